"""Detection: the one pass that turns a parsed message into the document every rule reads."""
