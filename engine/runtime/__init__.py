"""The model runtime: presets, loading, generation, merged role weights, S-BERT, morphemes."""
