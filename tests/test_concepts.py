import pytest
import torch

from conceptspace.concepts import Concept, ConceptError, ConceptSpec


def spec2x2(held=("blue-small",)):
    return ConceptSpec((Concept("color", ("red", "blue"), ((0.7, 0.3, 0.3), (0.3, 0.3, 0.7)), (0, 1)),
                        Concept("size", ("large", "small"), ((0.65,), (0.25,)), (0, None))), held)


def test_layout_cells_and_held_out():
    spec = spec2x2()
    assert spec.dim == 4 and spec.slot("color") == slice(0, 3) and spec.slot("size") == slice(3, 4)
    assert spec.cells == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert spec.held_out == ((1, 1),) and (1, 1) not in spec.train_cells
    assert spec.cell("blue-small") == spec.cell(["blue", "small"]) == spec.cell({"size": "small", "color": "blue"})
    assert spec.cell_name((0, 1)) == "red-small"


def test_encode_coordinates_decode_roundtrip_at_corners():
    spec = spec2x2()
    vectors = spec.encode(spec.cells)
    assert torch.allclose(vectors[3], torch.tensor([0.3, 0.3, 0.7, 0.25]))
    assert torch.allclose(spec.coordinates(vectors), torch.tensor(spec.cells, dtype=torch.float32), atol=1e-6)
    assert spec.decode(vectors).tolist() == [list(c) for c in spec.cells]
    midpoint = spec.encode(["red-large"]) / 2 + spec.encode(["blue-small"]) / 2
    assert torch.allclose(spec.coordinates(midpoint), torch.tensor([[0.5, 0.5]]), atol=1e-6)


def test_split_assemble_inverse_and_serialisation():
    spec = spec2x2()
    v = torch.rand(5, 4)
    assert torch.equal(spec.assemble(spec.split(v)), v)
    again = ConceptSpec.from_dict(spec.to_dict())
    assert again == spec and again.held_out == ((1, 1),)


@pytest.mark.parametrize("ref, field", [("green-small", "unknown value 'green'"), (["blue"], "needs 2 values"),
                                         ({"colour": "blue", "size": "small"}, "needs one value")])
def test_bad_cells(ref, field):
    with pytest.raises(ConceptError, match=field):
        spec2x2().cell(ref)


def test_bad_specs():
    with pytest.raises(ConceptError, match="every cell is held out"):
        spec2x2(held=("red-large", "red-small", "blue-large", "blue-small"))
    with pytest.raises(ConceptError, match="prototypes .* coincide"):
        Concept("c", ("a", "b"), ((1.0,), (1.0,)))
    with pytest.raises(ConceptError, match="expects 4"):
        spec2x2().coordinates(torch.zeros(2, 3))


def test_check_bounds_names_the_concept():
    spec = spec2x2()
    spec.check_bounds(spec.encode(spec.cells))
    with pytest.raises(ConceptError, match="concept 'color' leaves its valid range"):
        spec.check_bounds(torch.tensor([[1.2, 0.0, 0.0, 0.3]]))
