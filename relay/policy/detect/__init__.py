"""Detection: the one pass that turns a parsed message into the document every rule reads.

``reader`` walks the MIME tree once (relay.policy.mime) and builds a ``document``:
``normalize`` (NFKC, format characters, spelled digits, with an offset map back to the
original), ``tokens`` (addresses, phones, links, handles, unsubscribe footers, emoji in
one text), ``html`` (the HTML tree parsed once with lexbor: hidden text, remote
resources, anchors, the visible text) with ``css``, and ``view`` (the writer's own
words for message kinds). Rules (relay.policy.rules) only read the document.
"""
