"""The tamper-evident audit log (issue 7): ``docs/audit.md``.

Built: canonical entries (``entries``) for accepted and refused messages, deliveries, registry
and access-rights changes,
recorded by the one writer (``log.record``) in the same transaction as the event, the RFC 6962
Merkle maths (``merkle``), the sequencer that stores tree nodes and signs checkpoints
(``sequencer``, ``checkpoint``), checkpoints published outside the database (``publish``) and
the checkpoints held there or kept by auditors (``anchors``), the node reader (``nodes``),
verification (``verify``), proofs
served under ``/log/`` (``proofs``, ``api``) and checked offline (``offline``), and the evidence
bundle (``evidence``; its standalone verifier is ``tools/verify_evidence.py``). The auditor UI
is ``gateway.auditor``.
"""
