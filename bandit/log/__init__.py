"""The decision log: its schema and migrations, the request path's writes and reads
(``store``, group commit in ``writer``), the reader for training, and DSJSON."""
