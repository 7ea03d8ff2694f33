"""l2i-pipeline: LAION-Aesthetics -> LAION-L2I layered-image shards (Text2Layer, section III)."""
__version__ = "0.1.0"
