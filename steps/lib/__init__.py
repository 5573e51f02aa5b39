"""Code shared by several steps (probes, disk safety rules, boot filesystem edits, progress reports).

Kept apart from ``steps/`` itself, where each module is one step plugin.
"""
