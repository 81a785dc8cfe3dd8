"""Capacity planning for a fleet: the fleet file, replica sizing, placement, the plan, and exports."""
