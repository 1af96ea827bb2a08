//! A fine-tuning run's training curves: its epochs handed to [`crate::chart::curves_png`],
//! which draws loss and accuracy per epoch.

use image::RgbImage;

use super::checkpoint::EpochStats;
use crate::chart::{self, EpochPoint};

/// Two panels, loss then accuracy, training and validation, of `history`.
pub fn curves_png(history: &[EpochStats]) -> Result<RgbImage, String> {
    let points: Vec<EpochPoint> = history
        .iter()
        .map(|h| EpochPoint {
            epoch: h.epoch,
            train_loss: h.train_loss,
            train_accuracy: h.train_accuracy,
            val_loss: h.val_loss,
            val_accuracy: h.val_accuracy,
        })
        .collect();
    chart::curves_png(&points)
}
