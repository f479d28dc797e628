"""The image optimizer: operator-defined profiles applied to images behind asset routes (issue #16 §3).

``profiles`` decides from the request alone (profile, format, derived ETag; sans-IO), ``engine`` makes one
image with libvips in a pool thread, ``pool`` bounds how many are admitted and run, ``serve`` is the I/O shell
an asset route calls (``ImageOptimizer.handle``). A client only ever names a profile; sizes and formats are
the operator's (``[image_optimizer.profile_sets.*]``, config/images.py). docs/images.md has the contract.
Must not know about route tables or page rewriting.
"""
