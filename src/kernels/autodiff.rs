//! The backward steps of the fused operations, so that training runs them both ways: Burn's
//! autodiff records one node for the BCE sum and one for (z, kl), and computes their
//! gradients here.

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::tensor::Shape;

use super::{AdamCoefficients, FusedOps, PairUpdate};

#[derive(Debug)]
struct ReparamKlBackward;

impl<B: FusedOps> Backward<B, 3> for ReparamKlBackward {
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

/// The BCE's backward: the forward pass already computed d(sum)/d(logits) = sigmoid(l) - x;
/// it is scaled by the incoming gradient. Images get -l times it where they are tracked.
#[derive(Debug)]
struct BceBackward;

impl<B: FusedOps> Backward<B, 2> for BceBackward {
    /// sigmoid(l) - x, and the logits where the images need a gradient.
    type State = (FloatTensor<B>, Option<FloatTensor<B>>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [logits_node, images_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (unit_grad, logits) = ops.state;
        // [1] -> [1, 1], so that it broadcasts over [batch, pixels].
        let grad = B::float_reshape(grad, Shape::from(vec![1, 1]));
        if let (Some(node), Some(logits)) = (images_node, logits) {
            let d_images = B::float_neg(B::float_mul(logits, grad.clone()));
            grads.register::<B>(node.id, d_images);
        }
        if let Some(node) = logits_node {
            grads.register::<B>(node.id, B::float_mul(unit_grad, grad));
        }
    }
}

/// A dense layer's backward: relu's mask where it has one, then the gradients of x W + b.
#[derive(Debug)]
struct DenseBackward;

impl<B: FusedOps> Backward<B, 3> for DenseBackward {
    /// x and W, and the output where relu's mask needs it.
    type State = (FloatTensor<B>, FloatTensor<B>, Option<FloatTensor<B>>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_node, weight_node, bias_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x, weight, output) = ops.state;
        let grad = match output {
            Some(output) => B::relu_backward(output, grad),
            None => grad,
        };
        // The first layer's input is the images: its gradient, the largest product, is skipped.
        let (d_x, d_weight, d_bias) = match &x_node {
            Some(_) => {
                let (d_x, d_weight, d_bias) = B::dense_backward(x, weight, grad);
                (Some(d_x), d_weight, d_bias)
            }
            None => {
                let (d_weight, d_bias) = B::dense_weight_gradients(x, grad);
                (None, d_weight, d_bias)
            }
        };
        if let (Some(node), Some(d_x)) = (x_node, d_x) {
            grads.register::<B>(node.id, d_x);
        }
        for (node, grad) in [(weight_node, d_weight), (bias_node, d_bias)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

impl<B: FusedOps, C: CheckpointStrategy> FusedOps for Autodiff<B, C> {
    fn bce_logits_sum(
        logits: FloatTensor<Self>,
        images: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let images_tracked = images.is_tracked();
        let prep = BceBackward
            .prepare::<C>([logits.node(), images.node()])
            .compute_bound()
            .stateful();
        let (logits, images) = (logits.into_primitive(), images.into_primitive());
        let keep_logits = images_tracked.then(|| logits.clone());
        let (sum, unit_grad) = B::bce_logits_sum(logits, images);
        let sum = match prep {
            OpsKind::Tracked(prep) => prep.finish((unit_grad.clone(), keep_logits), sum),
            OpsKind::UnTracked(prep) => prep.finish(sum),
        };
        (sum, FloatTensor::<Self>::new(unit_grad))
    }

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
        untracked::<B, C>(B::reparam_kl_backward(
            mu.into_primitive(),
            log_var.into_primitive(),
            eps.into_primitive(),
            grad.into_primitive(),
        ))
    }

    /// An optimiser step is never recorded: it runs on the inner backend.
    fn adam_update(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        moment_1: FloatTensor<Self>,
        moment_2: FloatTensor<Self>,
        coefficients: AdamCoefficients,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        untracked::<B, C>(B::adam_update(
            param.into_primitive(),
            grad.into_primitive(),
            moment_1.into_primitive(),
            moment_2.into_primitive(),
            coefficients,
        ))
    }

    /// As [`FusedOps::adam_update`]: on the inner backend, never recorded.
    fn adam_update_pair(
        param_a: FloatTensor<Self>,
        grad_a: FloatTensor<Self>,
        moment_1_a: FloatTensor<Self>,
        moment_2_a: FloatTensor<Self>,
        param_b: FloatTensor<Self>,
        grad_b: FloatTensor<Self>,
        moment_1_b: FloatTensor<Self>,
        moment_2_b: FloatTensor<Self>,
        coefficients: AdamCoefficients,
    ) -> PairUpdate<Self> {
        let (pa, ma, va, pb, mb, vb) = B::adam_update_pair(
            param_a.into_primitive(),
            grad_a.into_primitive(),
            moment_1_a.into_primitive(),
            moment_2_a.into_primitive(),
            param_b.into_primitive(),
            grad_b.into_primitive(),
            moment_1_b.into_primitive(),
            moment_2_b.into_primitive(),
            coefficients,
        );
        let (pa, ma, va) = untracked::<B, C>((pa, ma, va));
        let (pb, mb, vb) = untracked::<B, C>((pb, mb, vb));
        (pa, ma, va, pb, mb, vb)
    }

    /// As [`FusedOps::adam_update`]: on the inner backend, never recorded.
    fn adam_update_sum(
        param: FloatTensor<Self>,
        grad_a: FloatTensor<Self>,
        grad_b: FloatTensor<Self>,
        moment_1: FloatTensor<Self>,
        moment_2: FloatTensor<Self>,
        coefficients: AdamCoefficients,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        untracked::<B, C>(B::adam_update_sum(
            param.into_primitive(),
            grad_a.into_primitive(),
            grad_b.into_primitive(),
            moment_1.into_primitive(),
            moment_2.into_primitive(),
            coefficients,
        ))
    }

    fn dense(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        relu: bool,
    ) -> FloatTensor<Self> {
        let prep = DenseBackward
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful();
        let (x, weight, bias) = (
            x.into_primitive(),
            weight.into_primitive(),
            bias.into_primitive(),
        );
        match prep {
            OpsKind::Tracked(prep) => {
                let output = B::dense(x.clone(), weight.clone(), bias, relu);
                let kept = relu.then(|| output.clone());
                prep.finish((x, weight, kept), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::dense(x, weight, bias, relu)),
        }
    }

    /// Gradients of gradients are not needed by latentlab: computed, but not tracked.
    fn dense_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        untracked::<B, C>(B::dense_backward(
            x.into_primitive(),
            weight.into_primitive(),
            grad.into_primitive(),
        ))
    }

    fn dense_weight_gradients(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (d_weight, d_bias) =
            B::dense_weight_gradients(x.into_primitive(), grad.into_primitive());
        (
            FloatTensor::<Self>::new(d_weight),
            FloatTensor::<Self>::new(d_bias),
        )
    }
}

/// Three results of the inner backend as autodiff tensors outside the graph.
type Triple<B> = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

fn untracked<B: FusedOps, C: CheckpointStrategy>((a, b, c): Triple<B>) -> Triple<Autodiff<B, C>> {
    (
        FloatTensor::<Autodiff<B, C>>::new(a),
        FloatTensor::<Autodiff<B, C>>::new(b),
        FloatTensor::<Autodiff<B, C>>::new(c),
    )
}
