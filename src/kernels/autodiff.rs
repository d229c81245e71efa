//! The backward step of the fused latent step, so that training runs the fused kernels both
//! ways: Burn's autodiff records one node for (z, kl) and calls
//! [`LatentOps::reparam_kl_backward`] for its gradients.

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;

use super::LatentOps;

#[derive(Debug)]
struct ReparamKlBackward;

impl<B: LatentOps> Backward<B, 3> for ReparamKlBackward {
    /// The inputs (mu, log_var, eps): a few numbers per image, cheaper kept than recomputed.
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [mu_node, log_var_node, eps_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (mu, log_var, eps) = ops.state;
        let (grad_mu, grad_log_var, grad_eps) = B::reparam_kl_backward(mu, log_var, eps, grad);
        for (node, grad) in [
            (mu_node, grad_mu),
            (log_var_node, grad_log_var),
            (eps_node, grad_eps),
        ] {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

impl<B: LatentOps, C: CheckpointStrategy> LatentOps for Autodiff<B, C> {
    fn reparam_kl(
        mu: FloatTensor<Self>,
        log_var: FloatTensor<Self>,
        eps: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let prep = ReparamKlBackward
            .prepare::<C>([mu.node(), log_var.node(), eps.node()])
            .compute_bound()
            .stateful();
        let (mu, log_var, eps) = (
            mu.into_primitive(),
            log_var.into_primitive(),
            eps.into_primitive(),
        );
        match prep {
            OpsKind::Tracked(prep) => {
                let output = B::reparam_kl(mu.clone(), log_var.clone(), eps.clone());
                prep.finish((mu, log_var, eps), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::reparam_kl(mu, log_var, eps)),
        }
    }

    /// Gradients of gradients are not needed by latentlab: computed, but not tracked.
    fn reparam_kl_backward(
        mu: FloatTensor<Self>,
        log_var: FloatTensor<Self>,
        eps: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (a, b, c) = B::reparam_kl_backward(
            mu.into_primitive(),
            log_var.into_primitive(),
            eps.into_primitive(),
            grad.into_primitive(),
        );
        (
            FloatTensor::<Self>::new(a),
            FloatTensor::<Self>::new(b),
            FloatTensor::<Self>::new(c),
        )
    }
}
