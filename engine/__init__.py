"""OhLoRA's engine, in layers (each imports only the ones below it):

- `engine.rules`: torch-free turn rules (time tag, sanction ladder, ethics rule, prompt formats,
  answer parsing, memory items, expressions, sanitising, the catalogue of Korean strings);
- `engine.runtime`: the models (presets, loading, generation, merged role weights, S-BERT);
- `engine.serving`: where model calls run (in-process backend, model processes, a completions
  server, batching, the model worker);
- the top: the turn pipeline, the service every front end uses, the daily maintenance and the
  wiring (`engine.api` is the public API of all of it).
"""
