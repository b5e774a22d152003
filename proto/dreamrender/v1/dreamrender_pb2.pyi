from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ImageFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IMAGE_FORMAT_UNSPECIFIED: _ClassVar[ImageFormat]
    IMAGE_FORMAT_PNG: _ClassVar[ImageFormat]
    IMAGE_FORMAT_JPEG: _ClassVar[ImageFormat]
    IMAGE_FORMAT_WEBP: _ClassVar[ImageFormat]
    IMAGE_FORMAT_GIF: _ClassVar[ImageFormat]

class DreamObjective(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DREAM_OBJECTIVE_UNSPECIFIED: _ClassVar[DreamObjective]
    DREAM_OBJECTIVE_MEAN: _ClassVar[DreamObjective]
    DREAM_OBJECTIVE_MEAN_SQUARED: _ClassVar[DreamObjective]

class GradientNorm(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GRADIENT_NORM_UNSPECIFIED: _ClassVar[GradientNorm]
    GRADIENT_NORM_STD: _ClassVar[GradientNorm]
    GRADIENT_NORM_MEAN_ABS: _ClassVar[GradientNorm]
    GRADIENT_NORM_LAPLACIAN: _ClassVar[GradientNorm]

class Precision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRECISION_UNSPECIFIED: _ClassVar[Precision]
    PRECISION_FP32: _ClassVar[Precision]
    PRECISION_BF16: _ClassVar[Precision]
    PRECISION_AUTO: _ClassVar[Precision]

class StyleInit(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STYLE_INIT_UNSPECIFIED: _ClassVar[StyleInit]
    STYLE_INIT_CONTENT: _ClassVar[StyleInit]
    STYLE_INIT_NOISE: _ClassVar[StyleInit]
    STYLE_INIT_IMAGE: _ClassVar[StyleInit]
    STYLE_INIT_FEED_FORWARD: _ClassVar[StyleInit]

class StyleMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STYLE_METHOD_UNSPECIFIED: _ClassVar[StyleMethod]
    STYLE_METHOD_OPTIMIZE: _ClassVar[StyleMethod]
    STYLE_METHOD_FEED_FORWARD: _ClassVar[StyleMethod]

class Optimizer(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OPTIMIZER_UNSPECIFIED: _ClassVar[Optimizer]
    OPTIMIZER_LBFGS: _ClassVar[Optimizer]
    OPTIMIZER_ADAM: _ClassVar[Optimizer]

class Pooling(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    POOLING_UNSPECIFIED: _ClassVar[Pooling]
    POOLING_MAX: _ClassVar[Pooling]
    POOLING_AVERAGE: _ClassVar[Pooling]

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_QUEUED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]
    JOB_STATE_INTERRUPTED: _ClassVar[JobState]

class GanDataset(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GAN_DATASET_UNSPECIFIED: _ClassVar[GanDataset]
    GAN_DATASET_MNIST: _ClassVar[GanDataset]
    GAN_DATASET_MNIST_FULL: _ClassVar[GanDataset]
    GAN_DATASET_IMAGES: _ClassVar[GanDataset]
IMAGE_FORMAT_UNSPECIFIED: ImageFormat
IMAGE_FORMAT_PNG: ImageFormat
IMAGE_FORMAT_JPEG: ImageFormat
IMAGE_FORMAT_WEBP: ImageFormat
IMAGE_FORMAT_GIF: ImageFormat
DREAM_OBJECTIVE_UNSPECIFIED: DreamObjective
DREAM_OBJECTIVE_MEAN: DreamObjective
DREAM_OBJECTIVE_MEAN_SQUARED: DreamObjective
GRADIENT_NORM_UNSPECIFIED: GradientNorm
GRADIENT_NORM_STD: GradientNorm
GRADIENT_NORM_MEAN_ABS: GradientNorm
GRADIENT_NORM_LAPLACIAN: GradientNorm
PRECISION_UNSPECIFIED: Precision
PRECISION_FP32: Precision
PRECISION_BF16: Precision
PRECISION_AUTO: Precision
STYLE_INIT_UNSPECIFIED: StyleInit
STYLE_INIT_CONTENT: StyleInit
STYLE_INIT_NOISE: StyleInit
STYLE_INIT_IMAGE: StyleInit
STYLE_INIT_FEED_FORWARD: StyleInit
STYLE_METHOD_UNSPECIFIED: StyleMethod
STYLE_METHOD_OPTIMIZE: StyleMethod
STYLE_METHOD_FEED_FORWARD: StyleMethod
OPTIMIZER_UNSPECIFIED: Optimizer
OPTIMIZER_LBFGS: Optimizer
OPTIMIZER_ADAM: Optimizer
POOLING_UNSPECIFIED: Pooling
POOLING_MAX: Pooling
POOLING_AVERAGE: Pooling
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_QUEUED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLED: JobState
JOB_STATE_INTERRUPTED: JobState
GAN_DATASET_UNSPECIFIED: GanDataset
GAN_DATASET_MNIST: GanDataset
GAN_DATASET_MNIST_FULL: GanDataset
GAN_DATASET_IMAGES: GanDataset

class Image(_message.Message):
    __slots__ = ("data", "media_type")
    DATA_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    media_type: str
    def __init__(self, data: _Optional[bytes] = ..., media_type: _Optional[str] = ...) -> None: ...

class PreviewOptions(_message.Message):
    __slots__ = ("every", "max_side", "format")
    EVERY_FIELD_NUMBER: _ClassVar[int]
    MAX_SIDE_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    every: int
    max_side: int
    format: ImageFormat
    def __init__(self, every: _Optional[int] = ..., max_side: _Optional[int] = ..., format: _Optional[_Union[ImageFormat, str]] = ...) -> None: ...

class DreamTerm(_message.Message):
    __slots__ = ("layer", "channels", "weight", "strongest")
    LAYER_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    STRONGEST_FIELD_NUMBER: _ClassVar[int]
    layer: str
    channels: _containers.RepeatedScalarFieldContainer[int]
    weight: float
    strongest: int
    def __init__(self, layer: _Optional[str] = ..., channels: _Optional[_Iterable[int]] = ..., weight: _Optional[float] = ..., strongest: _Optional[int] = ...) -> None: ...

class NoiseStart(_message.Message):
    __slots__ = ("width", "height")
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    width: int
    height: int
    def __init__(self, width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class RenderDreamRequest(_message.Message):
    __slots__ = ("model", "image", "noise", "terms", "objective", "gradient_norm", "octaves", "octave_scale", "steps", "step_size", "tile_size", "jitter", "seed", "size", "preview", "result_format", "precision", "detach", "request_id", "lap_levels", "guide", "zoom_frames", "zoom", "rotate", "shift_x", "shift_y", "frame_ms", "mask", "mask_invert")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    NOISE_FIELD_NUMBER: _ClassVar[int]
    TERMS_FIELD_NUMBER: _ClassVar[int]
    OBJECTIVE_FIELD_NUMBER: _ClassVar[int]
    GRADIENT_NORM_FIELD_NUMBER: _ClassVar[int]
    OCTAVES_FIELD_NUMBER: _ClassVar[int]
    OCTAVE_SCALE_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    STEP_SIZE_FIELD_NUMBER: _ClassVar[int]
    TILE_SIZE_FIELD_NUMBER: _ClassVar[int]
    JITTER_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    RESULT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    DETACH_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    LAP_LEVELS_FIELD_NUMBER: _ClassVar[int]
    GUIDE_FIELD_NUMBER: _ClassVar[int]
    ZOOM_FRAMES_FIELD_NUMBER: _ClassVar[int]
    ZOOM_FIELD_NUMBER: _ClassVar[int]
    ROTATE_FIELD_NUMBER: _ClassVar[int]
    SHIFT_X_FIELD_NUMBER: _ClassVar[int]
    SHIFT_Y_FIELD_NUMBER: _ClassVar[int]
    FRAME_MS_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    MASK_INVERT_FIELD_NUMBER: _ClassVar[int]
    model: str
    image: Image
    noise: NoiseStart
    terms: _containers.RepeatedCompositeFieldContainer[DreamTerm]
    objective: DreamObjective
    gradient_norm: GradientNorm
    octaves: int
    octave_scale: float
    steps: int
    step_size: float
    tile_size: int
    jitter: int
    seed: int
    size: int
    preview: PreviewOptions
    result_format: ImageFormat
    precision: Precision
    detach: bool
    request_id: str
    lap_levels: int
    guide: Image
    zoom_frames: int
    zoom: float
    rotate: float
    shift_x: int
    shift_y: int
    frame_ms: int
    mask: Image
    mask_invert: bool
    def __init__(self, model: _Optional[str] = ..., image: _Optional[_Union[Image, _Mapping]] = ..., noise: _Optional[_Union[NoiseStart, _Mapping]] = ..., terms: _Optional[_Iterable[_Union[DreamTerm, _Mapping]]] = ..., objective: _Optional[_Union[DreamObjective, str]] = ..., gradient_norm: _Optional[_Union[GradientNorm, str]] = ..., octaves: _Optional[int] = ..., octave_scale: _Optional[float] = ..., steps: _Optional[int] = ..., step_size: _Optional[float] = ..., tile_size: _Optional[int] = ..., jitter: _Optional[int] = ..., seed: _Optional[int] = ..., size: _Optional[int] = ..., preview: _Optional[_Union[PreviewOptions, _Mapping]] = ..., result_format: _Optional[_Union[ImageFormat, str]] = ..., precision: _Optional[_Union[Precision, str]] = ..., detach: _Optional[bool] = ..., request_id: _Optional[str] = ..., lap_levels: _Optional[int] = ..., guide: _Optional[_Union[Image, _Mapping]] = ..., zoom_frames: _Optional[int] = ..., zoom: _Optional[float] = ..., rotate: _Optional[float] = ..., shift_x: _Optional[int] = ..., shift_y: _Optional[int] = ..., frame_ms: _Optional[int] = ..., mask: _Optional[_Union[Image, _Mapping]] = ..., mask_invert: _Optional[bool] = ...) -> None: ...

class RenderDreamResponse(_message.Message):
    __slots__ = ("accepted", "queued", "progress", "frame", "result", "scores", "result_chunk")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    RESULT_CHUNK_FIELD_NUMBER: _ClassVar[int]
    accepted: Accepted
    queued: Queued
    progress: Progress
    frame: Frame
    result: Result
    scores: CheckpointScores
    result_chunk: ResultChunk
    def __init__(self, accepted: _Optional[_Union[Accepted, _Mapping]] = ..., queued: _Optional[_Union[Queued, _Mapping]] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ..., frame: _Optional[_Union[Frame, _Mapping]] = ..., result: _Optional[_Union[Result, _Mapping]] = ..., scores: _Optional[_Union[CheckpointScores, _Mapping]] = ..., result_chunk: _Optional[_Union[ResultChunk, _Mapping]] = ...) -> None: ...

class StyleImage(_message.Message):
    __slots__ = ("image", "weight", "scale", "mask", "source_mask")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    SOURCE_MASK_FIELD_NUMBER: _ClassVar[int]
    image: Image
    weight: float
    scale: float
    mask: Image
    source_mask: Image
    def __init__(self, image: _Optional[_Union[Image, _Mapping]] = ..., weight: _Optional[float] = ..., scale: _Optional[float] = ..., mask: _Optional[_Union[Image, _Mapping]] = ..., source_mask: _Optional[_Union[Image, _Mapping]] = ...) -> None: ...

class LayerWeight(_message.Message):
    __slots__ = ("layer", "weight")
    LAYER_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    layer: str
    weight: float
    def __init__(self, layer: _Optional[str] = ..., weight: _Optional[float] = ...) -> None: ...

class PresetWeight(_message.Message):
    __slots__ = ("index", "weight", "mask")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    index: int
    weight: float
    mask: Image
    def __init__(self, index: _Optional[int] = ..., weight: _Optional[float] = ..., mask: _Optional[_Union[Image, _Mapping]] = ...) -> None: ...

class RenderStyleRequest(_message.Message):
    __slots__ = ("model", "content", "styles", "size", "scales", "iterations", "optimizer", "learning_rate", "content_weight", "style_weight", "tv_weight", "content_layers", "style_layers", "init", "init_image", "seed", "preserve_colors", "pooling", "preview", "result_format", "coarse_iterations", "lbfgs_history", "method", "strength", "presets", "feed_forward_scores", "precision", "tile_size", "large_iterations", "detach", "request_id")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    STYLES_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SCALES_FIELD_NUMBER: _ClassVar[int]
    ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    OPTIMIZER_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    STYLE_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    TV_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_LAYERS_FIELD_NUMBER: _ClassVar[int]
    STYLE_LAYERS_FIELD_NUMBER: _ClassVar[int]
    INIT_FIELD_NUMBER: _ClassVar[int]
    INIT_IMAGE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    PRESERVE_COLORS_FIELD_NUMBER: _ClassVar[int]
    POOLING_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    RESULT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    COARSE_ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    LBFGS_HISTORY_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    STRENGTH_FIELD_NUMBER: _ClassVar[int]
    PRESETS_FIELD_NUMBER: _ClassVar[int]
    FEED_FORWARD_SCORES_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    TILE_SIZE_FIELD_NUMBER: _ClassVar[int]
    LARGE_ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    DETACH_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    model: str
    content: Image
    styles: _containers.RepeatedCompositeFieldContainer[StyleImage]
    size: int
    scales: int
    iterations: int
    optimizer: Optimizer
    learning_rate: float
    content_weight: float
    style_weight: float
    tv_weight: float
    content_layers: _containers.RepeatedCompositeFieldContainer[LayerWeight]
    style_layers: _containers.RepeatedCompositeFieldContainer[LayerWeight]
    init: StyleInit
    init_image: Image
    seed: int
    preserve_colors: bool
    pooling: Pooling
    preview: PreviewOptions
    result_format: ImageFormat
    coarse_iterations: int
    lbfgs_history: int
    method: StyleMethod
    strength: float
    presets: _containers.RepeatedCompositeFieldContainer[PresetWeight]
    feed_forward_scores: bool
    precision: Precision
    tile_size: int
    large_iterations: int
    detach: bool
    request_id: str
    def __init__(self, model: _Optional[str] = ..., content: _Optional[_Union[Image, _Mapping]] = ..., styles: _Optional[_Iterable[_Union[StyleImage, _Mapping]]] = ..., size: _Optional[int] = ..., scales: _Optional[int] = ..., iterations: _Optional[int] = ..., optimizer: _Optional[_Union[Optimizer, str]] = ..., learning_rate: _Optional[float] = ..., content_weight: _Optional[float] = ..., style_weight: _Optional[float] = ..., tv_weight: _Optional[float] = ..., content_layers: _Optional[_Iterable[_Union[LayerWeight, _Mapping]]] = ..., style_layers: _Optional[_Iterable[_Union[LayerWeight, _Mapping]]] = ..., init: _Optional[_Union[StyleInit, str]] = ..., init_image: _Optional[_Union[Image, _Mapping]] = ..., seed: _Optional[int] = ..., preserve_colors: _Optional[bool] = ..., pooling: _Optional[_Union[Pooling, str]] = ..., preview: _Optional[_Union[PreviewOptions, _Mapping]] = ..., result_format: _Optional[_Union[ImageFormat, str]] = ..., coarse_iterations: _Optional[int] = ..., lbfgs_history: _Optional[int] = ..., method: _Optional[_Union[StyleMethod, str]] = ..., strength: _Optional[float] = ..., presets: _Optional[_Iterable[_Union[PresetWeight, _Mapping]]] = ..., feed_forward_scores: _Optional[bool] = ..., precision: _Optional[_Union[Precision, str]] = ..., tile_size: _Optional[int] = ..., large_iterations: _Optional[int] = ..., detach: _Optional[bool] = ..., request_id: _Optional[str] = ...) -> None: ...

class RenderStyleResponse(_message.Message):
    __slots__ = ("accepted", "queued", "progress", "frame", "result", "scores", "result_chunk")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    RESULT_CHUNK_FIELD_NUMBER: _ClassVar[int]
    accepted: Accepted
    queued: Queued
    progress: Progress
    frame: Frame
    result: Result
    scores: CheckpointScores
    result_chunk: ResultChunk
    def __init__(self, accepted: _Optional[_Union[Accepted, _Mapping]] = ..., queued: _Optional[_Union[Queued, _Mapping]] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ..., frame: _Optional[_Union[Frame, _Mapping]] = ..., result: _Optional[_Union[Result, _Mapping]] = ..., scores: _Optional[_Union[CheckpointScores, _Mapping]] = ..., result_chunk: _Optional[_Union[ResultChunk, _Mapping]] = ...) -> None: ...

class Accepted(_message.Message):
    __slots__ = ("job_id", "queue_position", "server_id")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUE_POSITION_FIELD_NUMBER: _ClassVar[int]
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    queue_position: int
    server_id: str
    def __init__(self, job_id: _Optional[str] = ..., queue_position: _Optional[int] = ..., server_id: _Optional[str] = ...) -> None: ...

class Queued(_message.Message):
    __slots__ = ("queue_position", "eta_seconds", "lane")
    QUEUE_POSITION_FIELD_NUMBER: _ClassVar[int]
    ETA_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LANE_FIELD_NUMBER: _ClassVar[int]
    queue_position: int
    eta_seconds: float
    lane: str
    def __init__(self, queue_position: _Optional[int] = ..., eta_seconds: _Optional[float] = ..., lane: _Optional[str] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("stage", "stage_index", "stage_count", "step", "total_steps", "values", "elapsed_seconds", "eta_seconds", "precision", "terms")
    class ValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    STAGE_FIELD_NUMBER: _ClassVar[int]
    STAGE_INDEX_FIELD_NUMBER: _ClassVar[int]
    STAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ETA_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    TERMS_FIELD_NUMBER: _ClassVar[int]
    stage: str
    stage_index: int
    stage_count: int
    step: int
    total_steps: int
    values: _containers.ScalarMap[str, float]
    elapsed_seconds: float
    eta_seconds: float
    precision: str
    terms: _containers.RepeatedCompositeFieldContainer[DreamTerm]
    def __init__(self, stage: _Optional[str] = ..., stage_index: _Optional[int] = ..., stage_count: _Optional[int] = ..., step: _Optional[int] = ..., total_steps: _Optional[int] = ..., values: _Optional[_Mapping[str, float]] = ..., elapsed_seconds: _Optional[float] = ..., eta_seconds: _Optional[float] = ..., precision: _Optional[str] = ..., terms: _Optional[_Iterable[_Union[DreamTerm, _Mapping]]] = ...) -> None: ...

class Frame(_message.Message):
    __slots__ = ("image", "step", "score", "stage", "stage_index")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    STAGE_INDEX_FIELD_NUMBER: _ClassVar[int]
    image: Image
    step: int
    score: float
    stage: str
    stage_index: int
    def __init__(self, image: _Optional[_Union[Image, _Mapping]] = ..., step: _Optional[int] = ..., score: _Optional[float] = ..., stage: _Optional[str] = ..., stage_index: _Optional[int] = ...) -> None: ...

class CheckpointScores(_message.Message):
    __slots__ = ("step", "stage_index", "values", "evaluator")
    class ValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    STEP_FIELD_NUMBER: _ClassVar[int]
    STAGE_INDEX_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    EVALUATOR_FIELD_NUMBER: _ClassVar[int]
    step: int
    stage_index: int
    values: _containers.ScalarMap[str, float]
    evaluator: str
    def __init__(self, step: _Optional[int] = ..., stage_index: _Optional[int] = ..., values: _Optional[_Mapping[str, float]] = ..., evaluator: _Optional[str] = ...) -> None: ...

class ResultChunk(_message.Message):
    __slots__ = ("data", "offset", "total_size")
    DATA_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    offset: int
    total_size: int
    def __init__(self, data: _Optional[bytes] = ..., offset: _Optional[int] = ..., total_size: _Optional[int] = ...) -> None: ...

class Result(_message.Message):
    __slots__ = ("image", "stats")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    image: Image
    stats: RenderStats
    def __init__(self, image: _Optional[_Union[Image, _Mapping]] = ..., stats: _Optional[_Union[RenderStats, _Mapping]] = ...) -> None: ...

class RenderStats(_message.Message):
    __slots__ = ("width", "height", "steps", "elapsed_seconds", "model", "device", "values", "seed", "precision")
    class ValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    width: int
    height: int
    steps: int
    elapsed_seconds: float
    model: str
    device: str
    values: _containers.ScalarMap[str, float]
    seed: int
    precision: str
    def __init__(self, width: _Optional[int] = ..., height: _Optional[int] = ..., steps: _Optional[int] = ..., elapsed_seconds: _Optional[float] = ..., model: _Optional[str] = ..., device: _Optional[str] = ..., values: _Optional[_Mapping[str, float]] = ..., seed: _Optional[int] = ..., precision: _Optional[str] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "device", "native_bf16")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    NATIVE_BF16_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    device: str
    native_bf16: bool
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ..., device: _Optional[str] = ..., native_bf16: _Optional[bool] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "description", "available", "layers", "default_dream_layer", "supports_style", "kind", "presets")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_DREAM_LAYER_FIELD_NUMBER: _ClassVar[int]
    SUPPORTS_STYLE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PRESETS_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    available: bool
    layers: _containers.RepeatedCompositeFieldContainer[LayerInfo]
    default_dream_layer: str
    supports_style: bool
    kind: str
    presets: _containers.RepeatedCompositeFieldContainer[PresetInfo]
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., available: _Optional[bool] = ..., layers: _Optional[_Iterable[_Union[LayerInfo, _Mapping]]] = ..., default_dream_layer: _Optional[str] = ..., supports_style: _Optional[bool] = ..., kind: _Optional[str] = ..., presets: _Optional[_Iterable[_Union[PresetInfo, _Mapping]]] = ...) -> None: ...

class PresetInfo(_message.Message):
    __slots__ = ("index", "name")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    index: int
    name: str
    def __init__(self, index: _Optional[int] = ..., name: _Optional[str] = ...) -> None: ...

class LayerInfo(_message.Message):
    __slots__ = ("name", "channels")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    name: str
    channels: int
    def __init__(self, name: _Optional[str] = ..., channels: _Optional[int] = ...) -> None: ...

class EvaluateRequest(_message.Message):
    __slots__ = ("model", "content", "styles", "candidates", "content_layers", "style_layers", "content_weight", "style_weight", "tv_weight")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    STYLES_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    CONTENT_LAYERS_FIELD_NUMBER: _ClassVar[int]
    STYLE_LAYERS_FIELD_NUMBER: _ClassVar[int]
    CONTENT_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    STYLE_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    TV_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    model: str
    content: Image
    styles: _containers.RepeatedCompositeFieldContainer[StyleImage]
    candidates: _containers.RepeatedCompositeFieldContainer[Image]
    content_layers: _containers.RepeatedCompositeFieldContainer[LayerWeight]
    style_layers: _containers.RepeatedCompositeFieldContainer[LayerWeight]
    content_weight: float
    style_weight: float
    tv_weight: float
    def __init__(self, model: _Optional[str] = ..., content: _Optional[_Union[Image, _Mapping]] = ..., styles: _Optional[_Iterable[_Union[StyleImage, _Mapping]]] = ..., candidates: _Optional[_Iterable[_Union[Image, _Mapping]]] = ..., content_layers: _Optional[_Iterable[_Union[LayerWeight, _Mapping]]] = ..., style_layers: _Optional[_Iterable[_Union[LayerWeight, _Mapping]]] = ..., content_weight: _Optional[float] = ..., style_weight: _Optional[float] = ..., tv_weight: _Optional[float] = ...) -> None: ...

class EvaluateResponse(_message.Message):
    __slots__ = ("candidates", "model", "evaluator")
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    EVALUATOR_FIELD_NUMBER: _ClassVar[int]
    candidates: _containers.RepeatedCompositeFieldContainer[CandidateScores]
    model: str
    evaluator: str
    def __init__(self, candidates: _Optional[_Iterable[_Union[CandidateScores, _Mapping]]] = ..., model: _Optional[str] = ..., evaluator: _Optional[str] = ...) -> None: ...

class CandidateScores(_message.Message):
    __slots__ = ("values", "width", "height")
    class ValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    VALUES_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    values: _containers.ScalarMap[str, float]
    width: int
    height: int
    def __init__(self, values: _Optional[_Mapping[str, float]] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("job_id", "kind", "state", "done", "progress", "frame", "result", "error", "create_time", "update_time", "request_id", "detached", "server_id", "checkpoint", "resumed", "image_in_chunks")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DETACHED_FIELD_NUMBER: _ClassVar[int]
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    RESUMED_FIELD_NUMBER: _ClassVar[int]
    IMAGE_IN_CHUNKS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    kind: str
    state: JobState
    done: bool
    progress: Progress
    frame: Frame
    result: Result
    error: JobError
    create_time: float
    update_time: float
    request_id: str
    detached: bool
    server_id: str
    checkpoint: Image
    resumed: int
    image_in_chunks: bool
    def __init__(self, job_id: _Optional[str] = ..., kind: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., done: _Optional[bool] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ..., frame: _Optional[_Union[Frame, _Mapping]] = ..., result: _Optional[_Union[Result, _Mapping]] = ..., error: _Optional[_Union[JobError, _Mapping]] = ..., create_time: _Optional[float] = ..., update_time: _Optional[float] = ..., request_id: _Optional[str] = ..., detached: _Optional[bool] = ..., server_id: _Optional[str] = ..., checkpoint: _Optional[_Union[Image, _Mapping]] = ..., resumed: _Optional[int] = ..., image_in_chunks: _Optional[bool] = ...) -> None: ...

class JobError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class GetJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class CancelJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "state")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    state: JobState
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchJobResponse(_message.Message):
    __slots__ = ("accepted", "queued", "progress", "frame", "result", "scores", "result_chunk")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    RESULT_CHUNK_FIELD_NUMBER: _ClassVar[int]
    accepted: Accepted
    queued: Queued
    progress: Progress
    frame: Frame
    result: Result
    scores: CheckpointScores
    result_chunk: ResultChunk
    def __init__(self, accepted: _Optional[_Union[Accepted, _Mapping]] = ..., queued: _Optional[_Union[Queued, _Mapping]] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ..., frame: _Optional[_Union[Frame, _Mapping]] = ..., result: _Optional[_Union[Result, _Mapping]] = ..., scores: _Optional[_Union[CheckpointScores, _Mapping]] = ..., result_chunk: _Optional[_Union[ResultChunk, _Mapping]] = ...) -> None: ...

class TrainGeneratorRequest(_message.Message):
    __slots__ = ("name", "dataset", "images", "archive", "size", "channels", "latent", "batch", "epochs", "steps", "lr_g", "lr_d", "beta1", "beta2", "label_smoothing", "dropout", "conditional", "seed", "progress_every", "fid_samples", "preview", "detach", "request_id", "g_steps", "ema", "width")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    ARCHIVE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    LATENT_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    LR_G_FIELD_NUMBER: _ClassVar[int]
    LR_D_FIELD_NUMBER: _ClassVar[int]
    BETA1_FIELD_NUMBER: _ClassVar[int]
    BETA2_FIELD_NUMBER: _ClassVar[int]
    LABEL_SMOOTHING_FIELD_NUMBER: _ClassVar[int]
    DROPOUT_FIELD_NUMBER: _ClassVar[int]
    CONDITIONAL_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_EVERY_FIELD_NUMBER: _ClassVar[int]
    FID_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    DETACH_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    G_STEPS_FIELD_NUMBER: _ClassVar[int]
    EMA_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    name: str
    dataset: GanDataset
    images: _containers.RepeatedCompositeFieldContainer[Image]
    archive: bytes
    size: int
    channels: int
    latent: int
    batch: int
    epochs: int
    steps: int
    lr_g: float
    lr_d: float
    beta1: float
    beta2: float
    label_smoothing: float
    dropout: float
    conditional: bool
    seed: int
    progress_every: int
    fid_samples: int
    preview: PreviewOptions
    detach: bool
    request_id: str
    g_steps: int
    ema: float
    width: int
    def __init__(self, name: _Optional[str] = ..., dataset: _Optional[_Union[GanDataset, str]] = ..., images: _Optional[_Iterable[_Union[Image, _Mapping]]] = ..., archive: _Optional[bytes] = ..., size: _Optional[int] = ..., channels: _Optional[int] = ..., latent: _Optional[int] = ..., batch: _Optional[int] = ..., epochs: _Optional[int] = ..., steps: _Optional[int] = ..., lr_g: _Optional[float] = ..., lr_d: _Optional[float] = ..., beta1: _Optional[float] = ..., beta2: _Optional[float] = ..., label_smoothing: _Optional[float] = ..., dropout: _Optional[float] = ..., conditional: _Optional[bool] = ..., seed: _Optional[int] = ..., progress_every: _Optional[int] = ..., fid_samples: _Optional[int] = ..., preview: _Optional[_Union[PreviewOptions, _Mapping]] = ..., detach: _Optional[bool] = ..., request_id: _Optional[str] = ..., g_steps: _Optional[int] = ..., ema: _Optional[float] = ..., width: _Optional[int] = ...) -> None: ...

class TrainGeneratorResponse(_message.Message):
    __slots__ = ("accepted", "queued", "progress", "frame", "result", "scores", "result_chunk")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    RESULT_CHUNK_FIELD_NUMBER: _ClassVar[int]
    accepted: Accepted
    queued: Queued
    progress: Progress
    frame: Frame
    result: Result
    scores: CheckpointScores
    result_chunk: ResultChunk
    def __init__(self, accepted: _Optional[_Union[Accepted, _Mapping]] = ..., queued: _Optional[_Union[Queued, _Mapping]] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ..., frame: _Optional[_Union[Frame, _Mapping]] = ..., result: _Optional[_Union[Result, _Mapping]] = ..., scores: _Optional[_Union[CheckpointScores, _Mapping]] = ..., result_chunk: _Optional[_Union[ResultChunk, _Mapping]] = ...) -> None: ...

class RenderSampleRequest(_message.Message):
    __slots__ = ("generator", "count", "columns", "seed", "label", "walk", "walk_keys", "cell_side", "frame_ms", "result_format", "preview", "detach", "request_id")
    GENERATOR_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    WALK_FIELD_NUMBER: _ClassVar[int]
    WALK_KEYS_FIELD_NUMBER: _ClassVar[int]
    CELL_SIDE_FIELD_NUMBER: _ClassVar[int]
    FRAME_MS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    DETACH_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    generator: str
    count: int
    columns: int
    seed: int
    label: int
    walk: int
    walk_keys: int
    cell_side: int
    frame_ms: int
    result_format: ImageFormat
    preview: PreviewOptions
    detach: bool
    request_id: str
    def __init__(self, generator: _Optional[str] = ..., count: _Optional[int] = ..., columns: _Optional[int] = ..., seed: _Optional[int] = ..., label: _Optional[int] = ..., walk: _Optional[int] = ..., walk_keys: _Optional[int] = ..., cell_side: _Optional[int] = ..., frame_ms: _Optional[int] = ..., result_format: _Optional[_Union[ImageFormat, str]] = ..., preview: _Optional[_Union[PreviewOptions, _Mapping]] = ..., detach: _Optional[bool] = ..., request_id: _Optional[str] = ...) -> None: ...

class RenderSampleResponse(_message.Message):
    __slots__ = ("accepted", "queued", "progress", "frame", "result", "scores", "result_chunk")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    RESULT_CHUNK_FIELD_NUMBER: _ClassVar[int]
    accepted: Accepted
    queued: Queued
    progress: Progress
    frame: Frame
    result: Result
    scores: CheckpointScores
    result_chunk: ResultChunk
    def __init__(self, accepted: _Optional[_Union[Accepted, _Mapping]] = ..., queued: _Optional[_Union[Queued, _Mapping]] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ..., frame: _Optional[_Union[Frame, _Mapping]] = ..., result: _Optional[_Union[Result, _Mapping]] = ..., scores: _Optional[_Union[CheckpointScores, _Mapping]] = ..., result_chunk: _Optional[_Union[ResultChunk, _Mapping]] = ...) -> None: ...
