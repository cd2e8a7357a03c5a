"""The metrics suite: functions of features, probabilities and images (no models, no data sets)."""
from genjax.metrics.fid import feature_stats, fid_from_features, frechet_distance
from genjax.metrics.generative import (class_coverage, density_coverage, inception_score,
                                       kernel_inception_distance, knn_radii, label_accuracy,
                                       memorization_report, mmd2_unbiased,
                                       nearest_neighbour_distances, precision_recall)
from genjax.metrics.image_quality import psnr, rgb_to_y, ssim
from genjax.metrics.likelihood import (bernoulli_log_likelihood, gaussian_log_likelihood,
                                       iwae_bound, iwae_log_likelihood, nats_to_bits_per_dim)
