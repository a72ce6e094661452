"""CUDA-graph replay of a fixed-shape differentiable function, forward and backward (torch only)."""
from collections import OrderedDict
from typing import Callable, Hashable, List

import torch

GRAPH_REUSED_MESSAGE = (
    'DDR replayed its CUDA graph for this input shape again before the backward pass of an earlier call, '
    'which overwrote the activations that backward needs. Call backward once per DDR forward (as a training '
    'step does), or build DDR / DDRLoss with cuda_graphs=False for other patterns.')


class GraphedFunction:
    """Calls ``function`` through CUDA graphs captured once per key (``torch.cuda.make_graphed_callables``).

    The whole forward and the whole input-gradient backward each become a single graph launch, which removes
    the per-kernel launch cost of a small encoder. Each key's graph keeps the activations of its last replay
    only: if it is replayed again before the backward of an earlier output, that backward raises
    ``RuntimeError`` rather than returning a wrong gradient. Outputs are fresh tensors, never graph buffers.
    """

    def __init__(self, function: Callable[[torch.Tensor], torch.Tensor], max_graphs: int = 4):
        self.function = function
        self.max_graphs = max_graphs
        self._graphs: 'OrderedDict[Hashable, List]' = OrderedDict()

    def __len__(self) -> int:
        return len(self._graphs)

    def clear(self) -> None:
        self._graphs.clear()

    def __call__(self, x: torch.Tensor, key: Hashable) -> torch.Tensor:
        """``function(x)`` for an ``x`` on a CUDA device that requires grad; ``key`` names its shape and mode."""
        entry = self._graphs.get(key)
        if entry is None:
            while len(self._graphs) >= self.max_graphs:
                self._graphs.popitem(last=False)
            sample = x.detach().clone().requires_grad_(True)
            with torch.autocast(x.device.type, enabled=False):
                graphed = torch.cuda.make_graphed_callables(self.function, (sample, ))
            entry = self._graphs[key] = [graphed, 0]
        entry[1] += 1
        generation = entry[1]
        output = entry[0](x)

        def refuse_stale_backward(grad: torch.Tensor) -> torch.Tensor:
            if entry[1] != generation:
                raise RuntimeError(GRAPH_REUSED_MESSAGE)
            return grad

        output.register_hook(refuse_stale_backward)
        return output.clone()
