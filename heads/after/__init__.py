"""After training: reading run directories, ensembles, decisions, seed statistics, reports, store-mode
prediction and export. Imports fit/ and inputs/; nothing there imports it.
"""
