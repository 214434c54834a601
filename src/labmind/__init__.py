"""labmind: an autonomous research lab with rigorous judging of every gain."""

__version__ = "0.1.0"
