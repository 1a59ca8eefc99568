"""The PyTorch backend of the guarded primitives: what the exported torch modules run on."""

import torch


class TorchArrays:
    """The primitives' array functions over torch tensors."""

    where = staticmethod(torch.where)
    abs = staticmethod(torch.abs)
    sign = staticmethod(torch.sign)
    log = staticmethod(torch.log)
    exp = staticmethod(torch.exp)
    sqrt = staticmethod(torch.sqrt)
    tanh = staticmethod(torch.tanh)
    arctan = staticmethod(torch.atan)
    sin = staticmethod(torch.sin)
    cos = staticmethod(torch.cos)
    erf = staticmethod(torch.erf)
    erfc = staticmethod(torch.erfc)
    sigmoid = staticmethod(torch.sigmoid)
    log_sigmoid = staticmethod(torch.nn.functional.logsigmoid)

    @staticmethod
    def copysign(magnitude, b):
        """``magnitude`` (a float) with the sign bit of each element of ``b``."""
        return torch.copysign(torch.full_like(b, magnitude), b)

    @staticmethod
    def softplus(a):
        """log(1 + exp(a)) without overflow (exact, unlike F.softplus past its threshold)."""
        return torch.logaddexp(torch.zeros_like(a), a)

    @staticmethod
    def softmax(a):
        """softmax over the last (class) axis."""
        return torch.softmax(a, dim=-1)

    @staticmethod
    def log_softmax(a):
        """log softmax over the last (class) axis."""
        return torch.log_softmax(a, dim=-1)

    @staticmethod
    def sum_classes(a):
        """The sum over the last (class) axis, kept as an axis of length 1."""
        return torch.sum(a, dim=-1, keepdim=True)

    @staticmethod
    def as_inputs(*arrays):
        """The inputs as tensors of one floating dtype, at least float32 (the guards' constants
        underflow in half precision), on the device of the first tensor."""
        tensors = [a for a in arrays if isinstance(a, torch.Tensor)]
        dtype = torch.float32
        for floating in [t.dtype for t in tensors if t.is_floating_point()] or [torch.get_default_dtype()]:
            dtype = torch.promote_types(dtype, floating)
        device = tensors[0].device if tensors else None
        return tuple(torch.as_tensor(a, dtype=dtype, device=device) for a in arrays)

    @staticmethod
    def broadcast_shapes(*arrays):
        """The shape the tensors broadcast to."""
        return torch.broadcast_shapes(*(a.shape for a in arrays))

    broadcast_to = staticmethod(torch.broadcast_to)
