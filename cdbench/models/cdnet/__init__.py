"""CD-Net (Wang et al., "Measuring Perceptual Color Differences of Smartphone Photographs", TPAMI 2023).

- :mod:`~cdbench.models.cdnet.network`: the architecture (:class:`CDNet`);
- :mod:`~cdbench.models.cdnet.preprocess`: the evaluation-time resizing rules;
- :mod:`~cdbench.models.cdnet.checkpoint`: our folder format and import of the original ``.pt``;
- :mod:`~cdbench.models.cdnet.model`: the :class:`~cdbench.models.base.CDModel` (registered ``"cdnet"``);
- :mod:`~cdbench.models.cdnet.train`: training (``cdbench train cdnet``).
"""

from cdbench.models.cdnet.checkpoint import (
    convert_original_checkpoint,
    is_cdnet_folder,
    load_any,
    load_cdnet,
    read_original_checkpoint,
    save_cdnet,
)
from cdbench.models.cdnet.model import CDNetModel, create_cdnet
from cdbench.models.cdnet.network import CDNet
from cdbench.models.cdnet.train import TrainConfig, TrainData, TrainResult, train_cdnet, train_from_dataset

__all__ = ["CDNet", "CDNetModel", "TrainConfig", "TrainData", "TrainResult", "create_cdnet",
           "convert_original_checkpoint", "is_cdnet_folder", "load_any", "load_cdnet", "read_original_checkpoint",
           "save_cdnet", "train_cdnet", "train_from_dataset"]
