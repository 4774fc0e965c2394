"""``edge preview``: each camera's live annotated view and a zone editor, over opt-in HTTP."""
