"""The tamper-evident audit log (issue 7).

Built so far: the RFC 6962 Merkle maths (``merkle``) and the signed checkpoint note
(``checkpoint``), both pure and tested. **Not built yet:** the audit entries and where they are
written, the sequencer, stored tree nodes and checkpoints, proofs over HTTP and the command line,
``gateway audit verify``, the evidence bundle, payload encryption and the auditor UI.
"""
