"""birnn's keyword extras: forget_bias, learned/noisy initial states, repr, dtype moves, pickling."""

import torch

import birnn


def test_forget_bias_sets_forget_slice_and_survives_reset():
    lstm = birnn.LSTM(4, 3, num_layers=2, bidirectional=True, forget_bias=1.5)
    for l in range(2):
        for sfx in ("", "_reverse"):
            b_ih, b_hh = getattr(lstm, f"bias_ih_l{l}{sfx}"), getattr(lstm, f"bias_hh_l{l}{sfx}")
            assert torch.all(b_ih[3:6] == 1.5) and torch.all(b_hh[3:6] == 0)
            assert not torch.all(b_ih[:3] == 1.5)  # other gates keep torch's init
    with torch.no_grad():
        lstm.bias_ih_l0.zero_()
    lstm.reset_parameters()
    assert torch.all(lstm.bias_ih_l0[3:6] == 1.5)


def test_learned_initial_state_is_trained_and_broadcast():
    lstm = birnn.LSTM(4, 3, num_layers=2, bidirectional=True, initial_state="learned")
    assert lstm.initial_h.shape == (4, 1, 3) and lstm.initial_c.shape == (4, 1, 3)
    with torch.no_grad():
        lstm.initial_h.fill_(0.3)
    x = torch.randn(5, 2, 4)
    res = lstm(x, lengths=torch.tensor([5, 0]))
    assert torch.allclose(res.h_n[:, 1], torch.full((4, 3), 0.3))  # empty sequence keeps h_0
    res.output.sum().backward()
    assert lstm.initial_h.grad is not None and lstm.initial_h.grad.abs().sum() > 0
    assert lstm.initial_c.grad.abs().sum() > 0
    assert "initial_h" in lstm.state_dict()
    gru = birnn.GRU(4, 3, initial_state="learned")
    assert not hasattr(gru, "initial_c")


def test_initial_state_noise_only_in_training():
    gru = birnn.GRU(4, 3, initial_state_noise=0.5)
    x = torch.randn(5, 2, 4)
    gru.eval()
    assert torch.equal(gru(x).output, gru(x).output)
    gru.train()
    assert not torch.equal(gru(x).output, gru(x).output)
    plain = birnn.GRU(4, 3)
    plain.load_state_dict(gru.state_dict())
    gru.eval()
    assert torch.equal(gru(x).output, plain(x).output)


def test_repr_shows_extras_only_when_set():
    assert repr(birnn.LSTM(4, 3)) == repr(torch.nn.LSTM(4, 3))
    assert "merge_mode='sum'" in repr(birnn.LSTM(4, 3, bidirectional=True, merge_mode="sum"))


def test_output_size_and_move_between_dtypes():
    lstm = birnn.LSTM(4, 3, bidirectional=True, proj_size=2, merge_mode="sum")
    assert lstm.output_size == 2
    assert birnn.GRU(4, 3, bidirectional=True).output_size == 6
    lstm = lstm.double()
    assert lstm(torch.randn(3, 2, 4, dtype=torch.float64)).output.dtype == torch.float64


def test_deepcopy_and_pickle_roundtrip(tmp_path):
    import copy
    lstm = birnn.LSTM(4, 3, bidirectional=True, merge_mode="ave", forget_bias=1.0)
    x = torch.randn(3, 2, 4)
    clone = copy.deepcopy(lstm)
    assert torch.equal(clone(x).output, lstm(x).output)
    torch.save(lstm, tmp_path / "m.pt")
    loaded = torch.load(tmp_path / "m.pt", weights_only=False)
    assert torch.equal(loaded(x).output, lstm(x).output) and loaded.merge_mode == "ave"
