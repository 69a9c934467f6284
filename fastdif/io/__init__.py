"""Files in and out: discovery, decoding, the thumbnail cache and the saved format."""
