"""The nanochat pack: karpathy/autoresearch (train.py editable, prepare.py protected) as a labmind task with a
trusted val_bpb evaluator, offline data and an offline attention fallback (docs/packs/nanochat.md)."""
