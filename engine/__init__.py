"""Model-free turn rules of the Oh-LoRA engine (prompts, time tag, sanctions, parsing)."""
