"""The relay's vocabulary: values, outcomes, replies and errors; imports nothing of ours, does no I/O."""
