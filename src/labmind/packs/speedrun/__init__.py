"""The speedrun pack: KellerJordan/modded-nanogpt as a labmind task, time to a target validation loss
(docs/packs/speedrun.md)."""
