"""Exports: one registry of (kind, suffix) -> writer, used by the window's menus, the graph
panel, the command line's --plot and the offscreen figures alike."""
