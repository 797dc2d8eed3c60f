"""generative: VAE, GAN, normalizing flows, diffusion and autoregressive models, and priors built on them."""
