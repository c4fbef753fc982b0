"""The auditor UI at ``/audit/`` (issue 7, item 8): ``docs/audit.md``, section "The auditor UI".

Read-only pages for staff accounts of the auditor role: search (``search``), a message's whole
story (``story``), the log's integrity and verification runs (``integrity``), charts of volume
and failures (``charts``) and overdue archive transfers; ``views`` is the blueprint.
"""
