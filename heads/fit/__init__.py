"""Training heads: the config, the model and its losses, the loop, the probe and baseline heads, and the plan
that expands one config into runs (seeds x folds x sweep). Imports inputs/, never after/.
"""
