"""LLM judges over any OpenAI-compatible chat-completions API."""
