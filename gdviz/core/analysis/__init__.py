"""Analyses of a problem: each a function of a problem and settings that returns plain arrays,
serving the window, the command line and the tests alike."""
