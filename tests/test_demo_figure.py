"""The demo's figure says which run it shows and counts epochs in whole numbers."""
import matplotlib.image

from se_numpy.train import demo


def fake_results(epochs, seed=3):
    """The shape ``run_demo`` returns, with made-up curves (no training)."""
    history = [{"epoch": e, "train_loss": 2.0 / e, "test_accuracy": 0.1 * e}
               for e in range(1, epochs + 1)]
    return {key: {"model": model, "data": f"synthetic:{seed}", "seed": seed,
                  "train_size": demo.FAST["train_size"], "history": history}
            for key, model in (("plain", demo.PLAIN_MODEL), ("se", demo.SE_MODEL))}


def test_title_names_the_data_set_seed_and_budget():
    figure = demo.learning_curves_figure(fake_results(2, seed=3))
    title = " ".join(text.get_text() for text in figure.texts)          # the suptitle
    assert "synthetic" in title and "seed 3" in title, title
    assert f"{demo.FAST['train_size']:,d} training images" in title and "2 epochs" in title


def test_fast_demo_ticks_are_whole_epochs():
    # --fast trains 2 epochs: matplotlib's default ticks would be 1.0, 1.2, ..., 2.0
    figure = demo.learning_curves_figure(fake_results(demo.FAST["epochs"]))
    figure.canvas.draw()
    for axis in figure.axes:
        low, high = axis.get_xlim()
        ticks = [tick for tick in axis.get_xticks() if low <= tick <= high]
        assert ticks and all(float(tick).is_integer() for tick in ticks), ticks


def test_plot_learning_curves_writes_a_png(tmp_path):
    path = demo.plot_learning_curves(fake_results(2), str(tmp_path / "curves.png"))
    assert matplotlib.image.imread(path).shape[0] > 100
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]       # no temporary left
