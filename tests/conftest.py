"""Shared fixtures. Qt runs offscreen in every test."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
