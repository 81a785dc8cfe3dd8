"""What a machine has: probes of this host, named hardware specs, and the snapshot the planner reads."""
