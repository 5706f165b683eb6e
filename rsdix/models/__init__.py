"""Models: what a CLIP is, apart from how it trains.

* :mod:`~rsdix.models.presets`: the presets made here and the MiniLM text tower;
* :mod:`~rsdix.models.bundle`: :class:`ModelBundle`, weight checksums, quiet loading;
* :mod:`~rsdix.models.factory`: :func:`load_model` (open_clip names and tags, presets, files, folders);
* :mod:`~rsdix.models.formats`: checkpoint files, model folders (:func:`save_model`), transformers folders
  (:mod:`~rsdix.models.hf_adapter`);
* :mod:`~rsdix.models.locked_text`: locked-text tuning with a cached trunk;
* :mod:`~rsdix.models.sbert`: the S-BERT sentence encoder;
* :mod:`~rsdix.models.features`: the image/text feature cache every evaluation reads through;
* :mod:`~rsdix.models.zoo`: every public remote-sensing CLIP checkpoint as data (``zoo.yaml``),
  fetched and loaded as its entry says (:func:`load_zoo_model`, ``load_model("zoo:NAME")``);
* :mod:`~rsdix.models.export`: a model as a transformers ``CLIPModel`` folder or an open_clip hub folder.

The names most callers need are importable from here: ``from rsdix.models import load_model``.
"""
from rsdix.models.bundle import ModelBundle, count_parameters, model_fingerprint
from rsdix.models.factory import load_model
from rsdix.models.formats import read_state_dict, save_model
from rsdix.models.locked_text import lock_text_trunk
from rsdix.models.presets import minilm_path, preset_configs, register_model_config
from rsdix.models.sbert import sbert_model
from rsdix.models.zoo import load_zoo_model

__all__ = ["ModelBundle", "count_parameters", "model_fingerprint", "load_model", "read_state_dict", "save_model",
           "lock_text_trunk", "minilm_path", "preset_configs", "register_model_config", "sbert_model", "load_zoo_model"]
