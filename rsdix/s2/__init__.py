"""Sentinel-2 products and the S2LCD construction (RSDiX's Sentinel-2 captioning dataset).

Modules:

* ``products``: Sentinel-2 products (band folders, SAFE, multi-band GeoTIFF), metadata,
  radiometry (DN to reflectance), a scene on one pixel grid (:class:`Scene`, ``read_scene``);
* ``render``: true-colour rendering (B04/B03/B02) to 8 bit with a documented stretch;
* ``clouds``: cloudy pixels (SCL or a spectral test) and their check against SCL and ESA;
* ``tiling``: georeferenced patch windows, filters, patch files and the sidecar table;
* ``caption_files``: caption files (CVAT XML, caption CSV/TSV), their validation, the format demo;
* ``splits``: leak-free train/val/test splits by scene or spatial block, Karpathy JSON export;
* ``dataset``: the published S2LCD (facts, finding, reading, loading);
* ``corpora``: caption statistics against the public caption datasets;
* ``construction``: the construction run's config (``S2LCDConfig``), building patches, result rows;
* ``s2lcd_figures``: the construction's figures.
"""
