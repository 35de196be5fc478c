"""The relay's vocabulary: values, outcomes, replies, errors. Imports nothing of ours, no I/O."""
