"""Architecture records: what an artifact's ``config`` says its model is, and how to build it
(``registry``: one module per architecture, one line in its table)."""
