"""Treecast desktop app (PyQt6). Only ``bridge.py`` talks to the node."""
