"""Task packs: labmind's own adapters, trusted evaluators and configs around upstream benchmark checkouts
(docs/packs/). Upstream code is never shipped: each pack reads the user's checkout at a pinned commit.
The `labmind pack` verbs live in labmind.cli.pack."""
