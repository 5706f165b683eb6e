"""Data layer: caption and classification datasets, images and rasters, the dataset registry, checks.

Modules:

* ``files``: JSON, YAML and XML readers whose errors name the file;
* ``images``: image loading (RGB, multispectral TIFFs rendered to true colour) and verification;
* ``raster``: GeoTIFF reading, DN to reflectance, true-colour stretches;
* ``transforms``: remote-sensing training transforms (lossless rotations, zoom-out);
* ``captions``: caption records, Karpathy JSON and OpenCLIP CSV files, ``CaptionDataset``;
* ``classification``: class-folder / label-CSV datasets, class-name cleaning, ``ClassificationDataset``;
* ``registry``: the registered datasets (facts, citation, download and layout, loading);
* ``check``: a local copy checked against its registry entry;
* ``textstats``: caption tokenizer and corpus statistics;
* ``overview``: what is under the data root (notebook 01's tables);
* ``annotations``: object annotations (COCO, DOTA, VOC readers; Mask-to-Box);
* ``box_captions``: captions from boxes (Box-to-Caption), counting sets, the conversion command line;
* ``duplicates``: exact, perceptual-hash and feature duplicate images, exclusion lists;
* ``shards``: caption datasets as webdataset shards;
* ``parallel_captions``: multilingual (parallel) caption sets and the dataset that draws a caption
  per language (RS-M-CLIP); ``translation``: machine translation of captions.
"""
