"""``plot_samples``: a grid of example images, one row per class, for docs/data.md."""
import numpy as np


def plot_samples(path, dataset=None, per_class=6, show_channels=True):
    """Write a PNG with ``per_class`` training images of every class of ``dataset``.

    With ``show_channels`` (3-channel data only) each example is followed by its
    R, G and B planes in grey, so the reader sees which channel carries the class
    texture and which carry distractors. ``dataset`` defaults to the embedded one.
    Returns ``path``.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if dataset is None:
        from .synthetic import make_synthetic
        dataset = make_synthetic(0)
    images, labels = dataset.train_images, dataset.train_labels
    rgb = images.shape[1] == 3
    panels = 4 if (show_channels and rgb) else 1
    columns = per_class * panels
    figure, axes = plt.subplots(dataset.num_classes, columns,
                                figsize=(columns * 0.55, dataset.num_classes * 0.6))
    axes = np.atleast_2d(axes)
    for class_index in range(dataset.num_classes):
        examples = np.flatnonzero(labels == class_index)[:per_class]
        for slot in range(per_class):
            for panel in range(panels):
                axis = axes[class_index, slot * panels + panel]
                axis.set_xticks([])
                axis.set_yticks([])
                for spine in axis.spines.values():
                    spine.set_visible(False)
                if slot >= len(examples):
                    continue
                image = images[examples[slot]]
                if panel == 0:
                    shown = image.transpose(1, 2, 0) if rgb else image[0]
                    axis.imshow(shown, cmap=None if rgb else "gray", vmin=0, vmax=255)
                else:
                    axis.imshow(image[panel - 1], cmap="gray", vmin=0, vmax=255)
        axes[class_index, 0].set_ylabel(dataset.class_names[class_index], rotation=0,
                                        ha="right", va="center", fontsize=7)
    if panels == 4:
        for slot in range(per_class):
            for panel, title in enumerate(("RGB", "R", "G", "B")):
                axes[0, slot * panels + panel].set_title(title, fontsize=6)
    figure.suptitle(f"{dataset.name}: training examples per class", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path
