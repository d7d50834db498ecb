"""Config model of a GPU-like xPU: streaming multiprocessors with tensor cores, shared
memory, an L2 cache, HBM, kernel launches, and tensor parallelism over an interconnect."""
from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import Field, NonNegativeFloat, PositiveInt, field_validator, model_validator

from archsim.config.common import ArchBase, NmSparsityConfig, PipelineConfig
from archsim.config.types import PRECISION_BITS, Bandwidth, Bytes, Energy, Precision, Strict, Time

# tensor-core formats an unsupported operand format can be widened to (narrowest first)
_FLOAT_KINDS = ("fp8", "fp16", "bf16")
_INT_KINDS = ("int4", "int8", "int16", "int32", "mxint8")


class SparseMmaConfig(NmSparsityConfig):
    """Structured-sparse tensor-core MMA (NVIDIA Ampere / Hopper 2:4): a weight with at most ``n``
    non-zeros in every ``m`` consecutive values along K is stored compressed (its kept values plus
    a ``metadata_bits`` index per kept value) and multiplied at ``m / n`` times the dense MMA rate,
    the index selecting the matching activation values. Other weights run dense."""

    @model_validator(mode="after")
    def _n_below_m(self):
        if self.n >= self.m:
            raise ValueError(f"n: {self.n} kept of every {self.m} is no sparsity; n must be below m")
        return self


class WarpTileConfig(Strict):
    """How the tensor cores' operands leave shared memory: every warp multiplies a sub-tile of at
    most ``m`` x ``n`` of its CTA's tile and reads its A and B fragments for each k step from
    shared memory into registers (ldmatrix), so a CTA reads A once per warp column and B once per
    warp row, on top of writing each stage once. A CTA has at least ``min_per_cta`` warps (one per
    tensor-core sub-partition), smaller warp tiles when the CTA tile is small. Over the
    shared-memory bandwidth this bounds small CTA tiles (CUTLASS's Ampere tiles: 64 x 64 warp
    tiles at most, 4 warps a CTA)."""

    m: PositiveInt = Field(64, description="largest warp tile rows")
    n: PositiveInt = Field(64, description="largest warp tile columns")
    min_per_cta: PositiveInt = Field(4, description="fewest warps per CTA (tensor-core sub-partitions)")


class SmConfig(Strict):
    """One streaming multiprocessor (all SMs are identical)."""

    count: PositiveInt = Field(..., description="number of SMs")
    mma_macs_per_cycle: dict[Precision, NonNegativeFloat] = Field(
        ..., description="dense tensor-core MACs per cycle per SM for each operand precision "
                         "(0 or missing: not supported by the tensor cores)")
    cuda_macs_per_cycle: float = Field(64, gt=0, description="FP32 FMA per cycle per SM (CUDA cores); "
                                       "used for precisions the tensor cores lack")
    smem: Bytes = Field(..., description="shared memory (+L1) per SM usable by one CTA's tiles")
    smem_bytes_per_cycle: float = Field(128, gt=0, description=(
        "shared-memory bandwidth per SM (32 banks x 4 B on Ampere / Hopper): the stages written and "
        "the warps' fragments read share it (with ``warp_tile``)"))
    warp_tile: Optional[WarpTileConfig] = Field(None, description=(
        "warp tiling of a CTA, whose fragment reads bound a GEMM by the shared-memory bandwidth; "
        "None: operands reach the tensor cores without that bound"))
    l2_bytes_per_cycle: float = Field(..., gt=0, description="L2 -> SM fill bandwidth per SM")
    inflight_bytes: Bytes = Field(64 * 1024, description="bytes of global loads one SM keeps in flight "
                                  "(async-copy pipeline stages); with the memory latency this bounds "
                                  "the bandwidth one SM can pull (Little's law)")
    registers: Bytes = Field(256 * 1024, description="register file per SM; CTA accumulators may use half")
    max_threads: PositiveInt = Field(2048, description="most resident threads per SM (occupancy limit)")
    mma_efficiency: float = Field(1.0, gt=0, le=1, description=(
        "sustained fraction of the MMA peak under full tensor load (clock held below boost by the "
        "power limit)"))
    mma_efficiency_by_precision: dict[Precision, Annotated[float, Field(gt=0, le=1)]] = Field(
        default_factory=dict, description=(
            "mma_efficiency of the tensor cores running a given precision, where it differs (e.g. "
            "FP8 on Hopper: twice the math per cycle reaches the power limit at a lower share of its "
            "peak)"))
    mainloop_overhead_cycles: float = Field(
        0.0, ge=0, description="cycles per main-loop (k-tile) iteration not overlapped with MMA issue "
                               "(barrier, pipeline-stage wait, address arithmetic)")
    epilogue_bytes_per_cycle: float = Field(64, gt=0, description="accumulator write-out rate per SM")
    sparse_mma: Optional[SparseMmaConfig] = Field(None, description=(
        "structured-sparse tensor cores (2:4 on Ampere / Hopper); None: dense tensor cores only, "
        "pruned weights run dense"))


class L2Config(Strict):
    size: Bytes = Field(..., description="L2 capacity")


class TileConfig(Strict):
    """Candidate CTA tiles the GEMM library chooses from (per shape, the fastest estimate)."""

    m: list[PositiveInt] = Field([64, 128, 256], description="CTA tile rows (M)")
    n: list[PositiveInt] = Field([64, 128, 256], description="CTA tile columns (N)")
    k: PositiveInt = Field(32, description="k depth of one main-loop iteration for 16-bit operands "
                           "(a stage holds the same bytes at any width: 8-bit operands run 2x as deep, "
                           "4-bit 4x, 32-bit half)")
    min_m: PositiveInt = Field(16, description="smallest MMA row granule (M is padded to it)")
    split_k: list[PositiveInt] = Field([1, 2, 4, 8], description="split-K factors considered")
    swizzle: PositiveInt = Field(8, description="CTA rasterisation: M tiles per swizzle group")
    max_ctas_per_sm: PositiveInt = Field(4, description="most resident CTAs per SM (also limited by "
                                         "shared memory and registers)")
    stages: PositiveInt = Field(3, description="shared-memory pipeline stages per CTA")

    @field_validator("m", "n", "split_k")
    @classmethod
    def _nonempty(cls, v):
        if not v:
            raise ValueError("needs at least one value")
        return sorted(set(v))


# passes over a looped row of each row-reduction kernel, by default
ROW_LOOPS = {"layernorm": 2, "rmsnorm": 2, "softmax": 3}


class RowKernelConfig(Strict):
    """Row-reduction kernels (LayerNorm, RMSNorm, softmax), one CTA per row. A row no longer than
    ``onchip_elements`` is held in the CTA's registers and read from memory once; a longer row is
    looped over in chunks, once per loop of the kernel (statistics loops, then the output loop).
    A loop's re-read of the row hits L2 while the rows in flight (resident CTAs x row bytes) fit
    in the activation share of L2 (``activation_l2_fraction``): all CTAs sweep their rows at
    about the same pace, so a chunk's reuse distance is that footprint (least-recently-used
    replacement keeps it or loses it); otherwise every loop reads the row from HBM again."""

    onchip_elements: Optional[PositiveInt] = Field(None, description=(
        "longest row (elements) a CTA keeps on chip; None: every row (fused engine kernels that "
        "stage the row in registers / shared memory). torch.compile (Inductor): 1024, its "
        "persistent-reduction limit for inner reductions"))
    cta_threads: PositiveInt = Field(256, description=(
        "threads per CTA of a looped row kernel (Inductor: 8 warps for its 2048-element chunk)"))
    loops: dict[Literal["layernorm", "rmsnorm", "softmax"], PositiveInt] = Field(
        default_factory=lambda: dict(ROW_LOOPS), description=(
            "passes over a looped row: LayerNorm 2 (Welford mean and variance, then the output; "
            "3 where the variance is a second reduction after the mean, as in PyTorch 2.0's "
            "Inductor), RMSNorm 2, softmax 3 (max, sum of exponentials, output); kernels left out "
            "keep these"))

    @field_validator("loops")
    @classmethod
    def _all_kernels(cls, v):
        return {**ROW_LOOPS, **v}


class LaunchConfig(Strict):
    """Kernel launches. The host issues kernels in order, ``host`` apart, ahead of the GPU;
    a kernel starts after its launch and after the previous kernel ends plus ``gap``."""

    host: Time = Field(5e-6, description="host time to issue one kernel (driver + framework)")
    gap: Time = Field(1e-6, description="device-side gap between dependent kernels")
    fixed: Time = Field(0.0, description="once per run (per op with sync 'per_op'): host dispatch and "
                        "synchronisation of the timed call before its first kernel launch")
    fixed_after: Time = Field(0.0, description=(
        "host time of the timed call after its last kernel launch (returning through the framework, "
        "entering the synchronise): it overlaps the GPU's work, so a call takes fixed + launches + "
        "max(fixed_after, the GPU's remaining work)"))
    layer_setup: Time = Field(0.0, description=(
        "host time per layer per forward pass during which the GPU idles (per_run only): the inference "
        "runtime's per-layer work for a new pass (dynamic-shape inference, per-layer buffer bindings, "
        "plugin setup) when the pass is not a captured CUDA graph; 0 for graph replay or kernel-only models"))
    layer_setup_prefill: Optional[Time] = Field(None, description=(
        "``layer_setup`` of a prefill (context) pass, where the runtime also switches to its context "
        "optimisation profile; unset: same as ``layer_setup``"))
    sync: Literal["per_run", "per_op"] = Field(
        "per_run", description="'per_run': kernels are queued ahead of the GPU and the host waits once "
        "at the end (an inference engine); 'per_op': the host synchronises after every op and each op "
        "is a separately timed call costing ``fixed`` (op-by-op microbenchmarks, eager debugging)")


class InterconnectConfig(Strict):
    """Device-to-device links (NVLink-like) for tensor-parallel collectives."""

    bandwidth: Bandwidth = Field(300e9, description="per-device bandwidth in each direction")
    latency: Time = Field(2e-6, description="per-step latency of a collective (ring hop)")
    efficiency: float = Field(1.0, gt=0, le=1, description="achieved fraction of link bandwidth")
    algorithm: Literal["ring", "ideal"] = Field("ring", description=(
        "'ring': a tensor-parallel all-reduce is a ring reduce-scatter + all-gather, 2 (N-1)/N of "
        "the payload per device at bandwidth x efficiency plus 2 (N-1) hops of latency; 'ideal': "
        "collectives cost nothing (no time, kernel or link energy), the what-if of communication-"
        "free tensor parallelism and what simulators of one device of a tensor-parallel group "
        "assume; pipeline-stage transfers keep their cost"))
    energy_per_bit: Energy = Field(1.3, description=(
        "energy per bit sent over a link (default: GPU-to-GPU communication in AttAcc's energy "
        "table, 1.3 pJ/bit; energy_tables.yaml#attacc_hbm3_energy_model nvlink_comm)"))

    def allreduce_cycles(self, nbytes: float, devices: int, clock: float) -> int:
        """Cycles at ``clock`` of one all-reduce of ``nbytes`` per device over ``devices``
        devices: the ring's time, 0 on one device or with 'ideal'."""
        if self.algorithm == "ideal":
            return 0
        from archsim.uarch.gpu.cost import link_cycles
        return int(link_cycles(int(nbytes), devices, self.bandwidth * self.efficiency / clock,
                               self.latency * clock))

    def allreduce_pj(self, nbytes: float, devices: int) -> float:
        """pJ one device spends sending its share of an all-reduce of ``nbytes`` (0 with 'ideal')."""
        if self.algorithm == "ideal":
            return 0.0
        from archsim.uarch.gpu.cost import ring_bytes
        return ring_bytes(float(nbytes), devices) * 8 * self.energy_per_bit


def ideal_collectives_note(ic: InterconnectConfig, devices: int, field: str) -> str | None:
    """The remark a run with free collectives gets (``interconnect.algorithm: ideal`` over more
    than one tensor-parallel device), naming the field that sets it."""
    if ic.algorithm != "ideal" or devices <= 1:
        return None
    return (f"{field}: ideal: the all-reduces of the {devices}-way tensor parallelism cost nothing "
            "(no time, link bytes or energy); 'ring' prices them")


class ParallelConfig(PipelineConfig):
    """Tensor parallelism within a stage; pipeline stages of ``tensor`` devices each."""

    tensor: PositiveInt = Field(1, description="tensor-parallel devices (FC column/row splits, heads split)")


class GpuConfig(ArchBase):
    """A GPU: SMs with tensor cores, shared memory, L2, HBM; N devices in tensor parallel."""

    uarch: Literal["gpu"] = "gpu"
    sm: SmConfig
    l2: L2Config
    tiles: TileConfig = Field(default_factory=TileConfig)
    launch: LaunchConfig = Field(default_factory=LaunchConfig)
    row_kernel: RowKernelConfig = Field(default_factory=RowKernelConfig)
    interconnect: InterconnectConfig = Field(default_factory=InterconnectConfig)
    parallel: ParallelConfig = Field(default_factory=ParallelConfig)
    accumulator_bytes: PositiveInt = Field(4, description="bytes per partial sum (split-K workspace)")
    prefill_attention: Literal["fused", "gemm"] = Field("fused", description=(
        "prefill (context) attention kernels: one fused FlashAttention-style kernel per layer (scores "
        "in registers, masked tiles of a causal prompt skipped; what serving engines run, e.g. "
        "TensorRT-LLM's context FMHA), or separate batched GEMM / softmax kernels with the scores "
        "through memory (op-by-op framework code). A workload with attention: flash is always fused"))
    decode_attention: Literal["fused", "gemm"] = Field("fused", description=(
        "decode attention kernels: one fused FlashDecoding / paged-attention kernel per layer for all "
        "requests and heads (KV read once, scores on chip), or separate batched GEMM / softmax kernels"))
    decode_attention_split: Literal["kv", "none"] = Field("kv", description=(
        "how the fused decode-attention kernel spreads its work over the SMs: 'kv': every (request, "
        "KV head)'s cache is split over the SMs (FlashDecoding, multi-block masked MHA), all SMs "
        "stream whatever the batch; 'none': one CTA per request and KV head (per query head with "
        "decode_attention_kv: per_query_head) reads its whole cache, CTAs go in launch order to the "
        "first free SM and each streams at the SM's share of the memory bandwidth (bandwidth / SMs; "
        "its in-flight limit if lower), so a small batch leaves SMs and bandwidth idle and a partial "
        "last wave costs a full one (masked-MHA kernels without multi-block mode; the GPU model of "
        "AttAcc's reference simulator)"))
    decode_attention_kv: Literal["shared", "per_query_head"] = Field("shared", description=(
        "how the fused decode-attention kernel reads the KV cache of a grouped-query (GQA / MQA) "
        "model: 'shared': once per KV head, the group's query heads together (FlashDecoding, XQA); "
        "'per_query_head': one CTA per request and query head, each streaming its KV head from HBM "
        "(masked-MHA / paged-attention kernels of 2023 engines), the group's bytes read once per "
        "query head"))
    moe_gemm: Literal["grouped", "per_expert"] = Field("grouped", description=(
        "how a mixture-of-experts layer's experts run: 'grouped': one grouped-GEMM kernel per "
        "projection for every active expert, each with its own tokens and weight, one CTA tile "
        "for all and no split-K, and one kernel per activation op over every routed row (the fused "
        "MoE kernels of vLLM, TensorRT-LLM and SGLang, CUTLASS grouped GEMM); 'per_expert': a "
        "kernel per expert and op (a framework's loop over the experts)"))
    activation_l2_fraction: float = Field(0.5, ge=0, le=1, description=(
        "an activation tensor no larger than this fraction of L2 stays in L2 between kernels "
        "(write-back cache); larger ones go to HBM"))

    @model_validator(mode="after")
    def _tiles_fit(self):
        bpe = 2
        smallest = (min(self.tiles.m) + min(self.tiles.n)) * self.tiles.k * bpe * 2
        if smallest > self.sm.smem:
            raise ValueError(f"sm.smem: {self.sm.smem:.0f} B does not hold the smallest tile double-buffered "
                             f"({smallest} B: (min tiles.m + min tiles.n) x tiles.k x 2 B x 2)")
        return self

    def mma_exec(self, precision: str) -> str:
        """The precision the tensor cores run operands of ``precision`` at: itself when supported,
        else the narrowest supported format of the same kind (float / integer) at least as wide,
        the operands widened as they are loaded (FP8 on an A100 runs as FP16, as FP8-weight
        kernels for Ampere do; INT4 on an H100 as INT8); itself (the CUDA cores) when there is
        none. FP32 never silently becomes TF32."""
        rates = self.sm.mma_macs_per_cycle
        if rates.get(precision, 0.0) > 0 or precision in ("fp32", "tf32"):
            return precision
        kind = _INT_KINDS if precision in _INT_KINDS else _FLOAT_KINDS
        bits = PRECISION_BITS[precision]
        wider = [p for p in kind if rates.get(p, 0.0) > 0 and PRECISION_BITS[p] >= bits]
        return min(wider, key=lambda p: PRECISION_BITS[p]) if wider else precision

    def inflight_bytes_per_cycle(self) -> float:
        """Bytes one SM can pull per cycle with its loads in flight (Little's law over the
        memory latency)."""
        return float(self.sm.inflight_bytes) / max(1.0, self.memory.latency * self.clock)

    def feed_bytes_per_cycle(self) -> float:
        """One SM's operand pull rate: the L2 -> SM bandwidth or the in-flight limit."""
        return min(self.sm.l2_bytes_per_cycle, self.inflight_bytes_per_cycle())

    def mma_rate(self, precision: str) -> float:
        r = self.sm.mma_macs_per_cycle.get(self.mma_exec(precision), 0.0)
        return r if r > 0 else self.sm.cuda_macs_per_cycle

    def mma_issue_rate(self, precision: str) -> float:
        """The MMA rate the kernels are timed with: the peak rate, scaled so that with the
        cost model's ``mma_efficiency`` it runs at the precision's own sustained share
        (``mma_efficiency_by_precision``)."""
        e = self.sm.mma_efficiency_by_precision.get(self.mma_exec(precision))
        r = self.mma_rate(precision)
        return r * e / self.sm.mma_efficiency if e is not None else r
