"""Configuration of the 1D-ResNet ECG encoder (Hugging Face ``PretrainedConfig``)."""

from __future__ import annotations

from transformers import PretrainedConfig

# Blocks per stage for the named depths (BasicBlock ResNets).
RESNET_DEPTHS: dict[str, tuple[int, ...]] = {
    "resnet10": (1, 1, 1, 1),
    "resnet18": (2, 2, 2, 2),
    "resnet34": (3, 4, 6, 3),
}


class EcgEncoderConfig(PretrainedConfig):
    """Hyper-parameters of :class:`encoder.modeling.EcgEncoder`.

    Args:
        arch: depth preset, one of ``RESNET_DEPTHS`` (default ``resnet18``, the paper's).
        widths: channels of the four stages; the token width is ``widths[-1]``.
        kernel_size: 1D convolution kernel in the residual blocks.
        stem_kernel_size: kernel of the first (stride-2) convolution.
        in_leads: number of input leads (12).
        sampling_rate: Hz the encoder expects (100 or 500); inputs must be resampled to it.
        input_seconds: crop length in seconds used for training / inference windows.
        input_normalization: per-lead input normalisation, ``zscore`` or ``center`` (``encoder.preprocess``).
        embed_dim: width of the shared ECG-text embedding (default 256).
        label_names: names of the classifier outputs (e.g. SCP codes), in order.
        label_task: which PTB-XL label task produced ``label_names``.
        label_temperature: per-label temperature scaling of the classifier logits (calibration).
        label_thresholds: per-label decision thresholds tuned on the validation fold.
        dropout: dropout before the projection.
        aux_tasks: multi-task aux heads on the embedding, names of ``encoder.multitask.AUX_TASKS`` (ECG-QA
            attributes beyond SCP codes); empty = none (older encoders).
        aux_task_weights: loss weight per aux task (1 when not given).
        aux_thresholds: per-output decision thresholds of the sigmoid aux tasks, tuned on the validation fold.
    """

    model_type = "ecg_resnet1d"

    def __init__(
        self,
        arch: str = "resnet18",
        widths: tuple[int, ...] | list[int] = (64, 128, 256, 512),
        kernel_size: int = 7,
        stem_kernel_size: int = 15,
        in_leads: int = 12,
        sampling_rate: int = 100,
        input_seconds: float = 10.0,
        input_normalization: str = "zscore",
        embed_dim: int = 256,
        label_names: list[str] | None = None,
        label_task: str = "superdiagnostic",
        label_temperature: list[float] | None = None,
        label_thresholds: list[float] | None = None,
        dropout: float = 0.1,
        aux_tasks: list[str] | None = None,
        aux_task_weights: dict[str, float] | None = None,
        aux_thresholds: dict[str, list[float]] | None = None,
        **kwargs,
    ) -> None:
        if arch not in RESNET_DEPTHS:
            from encoder.errors import ConfigError

            raise ConfigError(f"Unknown encoder arch {arch!r}; choose one of {sorted(RESNET_DEPTHS)}.")
        self.arch = arch
        self.widths = list(widths)
        self.kernel_size = kernel_size
        self.stem_kernel_size = stem_kernel_size
        self.in_leads = in_leads
        self.sampling_rate = sampling_rate
        self.input_seconds = input_seconds
        self.input_normalization = input_normalization
        self.embed_dim = embed_dim
        self.label_names = list(label_names or [])
        self.label_task = label_task
        self.label_temperature = list(label_temperature) if label_temperature is not None else None
        self.label_thresholds = list(label_thresholds) if label_thresholds is not None else None
        self.dropout = dropout
        self.aux_tasks = list(aux_tasks or [])
        self.aux_task_weights = dict(aux_task_weights or {})
        self.aux_thresholds = dict(aux_thresholds or {})
        super().__init__(**kwargs)

    @property
    def depths(self) -> tuple[int, ...]:
        return RESNET_DEPTHS[self.arch]

    @property
    def token_dim(self) -> int:
        """Width of each token returned by ``forward_features``."""
        return int(self.widths[-1])

    @property
    def token_stride(self) -> int:
        """Input samples per output token: the stem's stride-2 convolution and max-pool, then one stride-2
        block per stage after the first (see ``EcgEncoder.__init__``)."""
        return 2 * 2 * 2 ** (len(self.widths) - 1)

    def num_tokens(self, num_samples: int) -> int:
        """Tokens ``forward_features`` returns for ``num_samples`` input samples (each stride-2 layer rounds up)."""
        n = int(num_samples)
        for _ in range(self.token_stride.bit_length() - 1):
            n = -(-n // 2)
        return n

    @property
    def input_samples(self) -> int:
        return int(round(self.input_seconds * self.sampling_rate))
