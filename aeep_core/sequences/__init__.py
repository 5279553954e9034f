"""Medical event sequences: readers, event embedding, patient matrices, 1-D CNN, HF cohort."""

from aeep_core.sequences.loading import load_sequence_dataset, load_sequence_folder, looks_like_sequences

__all__ = ["load_sequence_dataset", "load_sequence_folder", "looks_like_sequences"]
