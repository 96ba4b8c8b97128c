"""cauvade_pyro.config repeats a few choice lists so that config errors answer without importing torch;
they must stay equal to the models' own lists."""

from cauvade_pyro import config
from cauvade_pyro.models import LIKELIHOODS, Y_PARAMETERIZATIONS
from cauvade_pyro.models.confounded_attributes import EPS_PRIOR_GIVEN
from cauvade_pyro.models.nets import DECODERS, ENCODERS, IMAGE_EPS_FILM


def test_config_choice_lists_match_the_models():
    assert config.LIKELIHOODS == LIKELIHOODS
    assert config.EPS_PRIOR_GIVEN == EPS_PRIOR_GIVEN
    assert config.Y_PARAMETERIZATIONS == Y_PARAMETERIZATIONS
    assert set(config.NETS) == set(DECODERS) == set(ENCODERS)
    assert config.IMAGE_EPS_FILM == IMAGE_EPS_FILM
