"""DATA -> decision, as data: how a message's path reads from ``handle_DATA`` to the commit.

1. ``relay.smtp.handler.RelayHandler.handle_DATA`` gathers the transaction (the session
   as a ``relay.core.values.SessionInfo``, the recipients resolved at RCPT, the bytes)
   and calls ``relay.pipeline.Pipeline.accept`` (shielded: a client hanging up does not
   cancel a commit).
2. ``Pipeline.accept`` runs ``relay.intake.chain.run`` with ``chain.MESSAGE``, once:
   ``chain.parse`` asks the ``read`` port (``Pipeline._read``), which runs
   ``relay.intake.read.read`` in a content worker: ``has_bare_line_ending_or_nul``,
   the structure scan (``relay.mail.limits.check``), then ``relay.mail.parse.intake``,
   the one parse (``split_message``, ``header_fields``, the hop count, the strict From
   by ``relay.authn.fromaddr.single_from``, the Subject by ``decode_words``), and the
   text parts for search (``Message.readable_text``). The ``relay.core.values.Message``
   it returns is what every later stage reads. A refusal here is archived bounded for
   every recipient (``relay.intake.decide.refused_before_parsing``).
3. For each recipient, ``chain.run`` with ``chain.RECIPIENT`` on a context that shares
   the Message: ``chain.check_sender`` (the authenticator: ``registered_sender``, and
   with auth on ``relay.wiring``'s check, ``relay.authn.authenticate`` and
   ``judge_sender`` reading the Message's From, To and Cc); ``chain.load_thread``
   (``relay.store.threads.load_thread_index`` and ``prior_review_requests`` through
   ports, and the ``PolicyContext``); ``chain.judge`` (the policy port: the
   ``relay.policy_pool.PolicyRunner`` sends the Message's bytes to a worker, where
   ``relay.policy.PolicyEngine.evaluate`` builds its document); ``chain.check_opt_out``
   (``RateLimits.is_reply`` and ``RateLimits.opt_out``); ``chain.rewrite``
   (``relay.mail.rewrite.rewrite_message`` in a worker, on the bytes the policy let
   through). Each returns the next frozen ``chain.Context`` or a ``chain.Refusal``,
   which names its ``relay.core.outcomes.ReasonCode`` where it is made (intake, budget,
   stranger, sender, policy, opted-out); the archive stores that code as given.
4. ``relay.intake.decide.entries`` turns the outcomes into one commit entry per
   recipient (``decide.envelope_record``, and an ``Outgoing`` when it is delivered);
   one refusal refuses the whole transaction (the others: ``co-recipient``).
5. ``relay.store.commit.GroupCommitter.submit`` hands them to the store's one writer,
   which commits the group durably; only then does ``Pipeline.accept`` return the 250
   (or the refusal, or a limit's reply at commit), and ``handle_DATA`` sends it.
"""
