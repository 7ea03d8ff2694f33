"""Layered exports of a sample: PNGs, a halo-free RGBA foreground and an OpenRaster (.ora) file."""
