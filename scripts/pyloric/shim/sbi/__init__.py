"""Minimal stand-in for sbi (see ../torch/__init__.py)."""
