"""Where model calls run: in-process backends, model processes, a completions server, batching
and the model worker that keeps them off the event loop."""
