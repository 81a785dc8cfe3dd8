"""The planner: for a model on a machine, the plan (dtype, placement, speed) or why it does not fit."""
