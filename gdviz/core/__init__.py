"""The headless heart of gdviz: torch, numpy and the standard library only, never Qt."""
