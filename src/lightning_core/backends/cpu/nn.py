"""placeholder: filled by the CPU ops work."""
