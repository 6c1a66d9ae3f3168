"""Colour tables as numpy arrays, and colouring a map with them (no Qt, no pyqtgraph).

The tables are the ones the app showed from pyqtgraph's bundled maps, byte for byte: each is
``pg.colormap.get(SOURCE).getLookupTable(0.0, 1.0, 256, alpha=False, mode="byte")`` stored as
hex, and ``tests/core/test_colormaps.py`` compares every one with pyqtgraph. :func:`colorize`
maps values to colours exactly as a ``pg.ImageItem`` given :func:`lut` and the same levels
(pyqtgraph's ``rescaleData``: float32 ``(v - lo) * 256 / (hi - lo)``, clipped to 0..255 and
truncated), so an app pane, a saved figure and a CLI figure agree pixel for pixel.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from hookscope.core.display.render import normalize_signed
from hookscope.core.errors import HookScopeError

COLORMAPS: dict[str, str] = {
    "jet": "CET-R4",  # colorcet rainbow4: the jet look, perceptually evened out
    "turbo": "turbo",
    "viridis": "viridis",
    "inferno": "inferno",
    "magma": "magma",
    "plasma": "plasma",
    "cividis": "cividis",
    "gray": "CET-L1",
    "grey": "CET-L1",
    "bwr": "CET-D1",  # diverging blue-white-red: zero at the centre
    "coolwarm": "CET-D1A",
    "gwv": "CET-D3",
}
"""Our names → the pyqtgraph map each table was taken from."""
SIGNED_COLORMAPS = ("bwr", "coolwarm", "gwv")
DEFAULT_CMAP = "jet"
DEFAULT_SIGNED_CMAP = "bwr"
DIVERGING = DEFAULT_SIGNED_CMAP
"""Blue-white-red: zero in the middle, for gradients and signed attributions."""
UNSIGNED_CMAP = "inferno"
"""Magnitudes from 0 (saliency, |gradient|)."""
NAN_RGB = (150, 150, 150)
"""Colour of NaN (the gaps between mosaic tiles); a pane shows it as its view's background."""

# 256 RGB triplets per map, as hex (768 bytes each); keyed by the pyqtgraph source name.
_TABLES: dict[str, tuple[str, ...]] = {
    "CET-R4": (
        "04016c04016f04017204017504017804017b04007e04008104008405008705008a05008e050091050094"
        "05019605019a05019d05019f0502a20603a50603a80604aa0606ac0707af0709b1080bb3080db5090fb7"
        "0911b90a13bb0a15bd0b16bf0b18c10b1ac30c1cc50c1dc70d1fc90d20cb0e22cd0e23cf0e25d10f27d2"
        "0f28d40f2ad6102bd8102cda102edc102fde1131e01132e21134e41135e61237e81238ea123aeb133bed"
        "143dee143fef1541f01743f01845f01947ef1b4aee1c4ded1d50eb1e53e81f55e51f58e2205cde1f5fda"
        "1f62d61d65d21c68ce1a6bca176dc51470c11173bc0d75b80978b3077aae057caa067fa50881a00b839b"
        "10859515879019898b1d8b85218d80248e7a2790742a926e2c94682d95622e975c2f9956309b50309c4a"
        "309e4431a03e31a13832a33233a42c35a62737a72239a91d3caa193fab1543ad1246ae0f4aaf0c4eb00a"
        "52b10856b2075ab3075db40661b50665b60668b7066cb9066fba0573bb0576bc057abd057dbe0580bf05"
        "83c00587c1058ac2058dc30490c40493c50496c6049ac7049dc804a0c904a3ca04a6cb03a9cc03accd03"
        "afce03b2cf03b5d003b8d103bbd203bed303c1d402c4d502c7d602cad702cdd702d0d802d3da02d6da02"
        "d9db02dcdc02dfdd02e1de02e4de02e7df02eadf02ecdf02eedf03f0de03f2de03f4dd04f5dc05f7db05"
        "f8d906f8d707f9d607fad408fad209fad00aface0afbcc0bfbca0cfbc80cfbc60dfbc40efbc20efbc00f"
        "fbbe0ffbbc10fbba10fcb811fcb611fcb412fcb212fcb013fcae13fcac13fca914fca714fca514fca315"
        "fca115fc9f15fc9d15fc9b15fc9815fc9616fc9416fc9215fc8f15fc8d15fc8a15fc8815fc8614fc8314"
        "fd8114fd7e13fd7b13fd7913fd7612fd7312fe7011fe6e11fe6b11fe6810fe6510fe6210fe5f0ffe5b0f"
        "fe580ffe550ffe510efe4e0efe4a0efe470efe430efd3f0dfd3c0dfc380dfb350dfa320df92f0df82c0d"
        "f6290df5270df3240df1220def200dee1f0dec1d0dea1b0de8190de6170de4160de2140de0120dde100d"
        "dc0d0ddb0b0dd8080dd7050d"
    ),
    "turbo": (
        "30123b32154333184a341b51351e5836215f37246638276d392a733a2d793b2f803c32863d358b3e3891"
        "3f3b973f3e9c4040a24143a74146ac4249b1424bb5434eba4451bf4454c34456c74559cb455ccf455ed3"
        "4661d64664da4666dd4669e0466be3476ee64771e94773eb4776ee4778f0477bf2467df44680f64682f8"
        "4685fa4687fb458afc458cfd448ffe4391fe4294ff4196ff4099ff3e9bfe3d9efe3ba0fd3aa3fc38a5fb"
        "37a8fa35abf833adf731aff52fb2f42eb4f22cb7f02ab9ee28bceb27bee925c0e723c3e422c5e220c7df"
        "1fc9dd1ecbda1ccdd81bd0d51ad2d21ad4d019d5cd18d7ca18d9c818dbc518ddc218dec018e0bd19e2bb"
        "19e3b91ae4b61ce6b41de7b21fe9af20eaac22ebaa25eca727eea42aefa12cf09e2ff19b32f29835f394"
        "38f4913cf58e3ff68a43f78746f8844af8804ef97d52fa7a55fa7659fb735dfc6f61fc6c65fd6969fd66"
        "6dfe6271fe5f75fe5c79fe597dff5680ff5384ff5188ff4e8bff4b8fff4992ff4796fe4499fe429cfe40"
        "9ffd3fa1fd3da4fc3ca7fc3aa9fb39acfb38affa37b1f936b4f836b7f735b9f635bcf534bef434c1f334"
        "c3f134c6f034c8ef34cbed34cdec34d0ea34d2e935d4e735d7e535d9e436dbe236dde037dfdf37e1dd37"
        "e3db38e5d938e7d739e9d539ebd339ecd13aeecf3aefcd3af1cb3af2c93af4c73af5c53af6c33af7c13a"
        "f8be39f9bc39faba39fbb838fbb637fcb336fcb136fdae35fdac34fea933fea732fea431fea130fe9e2f"
        "fe9b2dfe992cfe962bfe932afe9029fd8d27fd8a26fc8725fc8423fb8122fb7e21fa7b1ff9781ef9751d"
        "f8721cf76f1af66c19f56918f46617f36315f26014f15d13f05b12ef5811ed5510ec530feb500eea4e0d"
        "e84b0ce7490ce5470be4450ae2430ae14109df3f08dd3d08dc3b07da3907d83706d63506d43305d23105"
        "d02f05ce2d04cc2b04ca2a04c82803c52603c32503c12302be2102bc2002b91e02b71d02b41b01b21a01"
        "af1801ac1701a91601a71401a41301a112019e10019b0f01980e01950d01920b018e0a018b0902880802"
        "8507028106027e05027a0403"
    ),
    "viridis": (
        "44015444025645045745055946075a46085c460a5d460b5e470d60470e61471063471164471365481467"
        "48166848176948186a481a6c481b6d481c6e481d6f481f70482071482173482374482475482576482677"
        "482878482979472a7a472c7a472d7b472e7c472f7d46307e46327e46337f463480453581453781453882"
        "443983443a83443b84433d84433e85423f854240864241864142874144874045884046883f47883f4889"
        "3e49893e4a893e4c8a3d4d8a3d4e8a3c4f8a3c508b3b518b3b528b3a538b3a548c39558c39568c38588c"
        "38598c375a8c375b8d365c8d365d8d355e8d355f8d34608d34618d33628d33638d32648e32658e31668e"
        "31678e31688e30698e306a8e2f6b8e2f6c8e2e6d8e2e6e8e2e6f8e2d708e2d718e2c718e2c728e2c738e"
        "2b748e2b758e2a768e2a778e2a788e29798e297a8e297b8e287c8e287d8e277e8e277f8e27808e26818e"
        "26828e26828e25838e25848e25858e24868e24878e23888e23898e238a8d228b8d228c8d228d8d218e8d"
        "218f8d21908d21918c20928c20928c20938c1f948c1f958b1f968b1f978b1f988b1f998a1f9a8a1e9b8a"
        "1e9c891e9d891f9e891f9f881fa0881fa1881fa1871fa28720a38620a48621a58521a68522a78522a884"
        "23a98324aa8325ab8225ac8226ad8127ad8128ae8029af7f2ab07f2cb17e2db27d2eb37c2fb47c31b57b"
        "32b67a34b67935b77937b87838b9773aba763bbb753dbc743fbc7340bd7242be7144bf7046c06f48c16e"
        "4ac16d4cc26c4ec36b50c46a52c56954c56856c66758c7655ac8645cc8635ec96260ca6063cb5f65cb5e"
        "67cc5c69cd5b6ccd5a6ece5870cf5773d05675d05477d1537ad1517cd2507fd34e81d34d84d44b86d549"
        "89d5488bd6468ed64590d74393d74195d84098d83e9bd93c9dd93ba0da39a2da37a5db36a8db34aadc32"
        "addc30b0dd2fb2dd2db5de2bb8de29bade28bddf26c0df25c2df23c5e021c8e020cae11fcde11dd0e11c"
        "d2e21bd5e21ad8e219dae319dde318dfe318e2e418e5e419e7e419eae51aece51befe51cf1e51df4e61e"
        "f6e620f8e621fbe723fde725"
    ),
    "inferno": (
        "00000401000501010601010802010a02020c02020e03021004031204031405041706041907051b08051d"
        "09061f0a07220b07240c08260d08290e092b10092d110a30120a32140b34150b37160b39180c3c190c3e"
        "1b0c411c0c431e0c451f0c48210c4a230c4c240c4f260c51280b53290b552b0b572d0b592f0a5b310a5c"
        "320a5e340a5f3609613809623909633b09643d09653e0966400a67420a68440a68450a69470b6a490b6a"
        "4a0c6b4c0c6b4d0d6c4f0d6c510e6c520e6d540f6d550f6d57106e59106e5a116e5c126e5d126e5f136e"
        "61136e62146e64156e65156e67166e69166e6a176e6c186e6d186e6f196e71196e721a6e741a6e751b6e"
        "771c6d781c6d7a1d6d7c1d6d7d1e6d7f1e6c801f6c82206c84206b85216b87216b88226a8a226a8c2369"
        "8d23698f24699025689225689326679526679727669827669a28659b29649d29649f2a63a02a63a22b62"
        "a32c61a52c60a62d60a82e5fa92e5eab2f5ead305dae305cb0315bb1325ab3325ab43359b63458b73557"
        "b93556ba3655bc3754bd3853bf3952c03a51c13a50c33b4fc43c4ec63d4dc73e4cc83f4bca404acb4149"
        "cc4248ce4347cf4446d04545d24644d34743d44842d54a41d74b3fd84c3ed94d3dda4e3cdb503bdd513a"
        "de5238df5337e05536e15635e25734e35933e45a31e55c30e65d2fe75e2ee8602de9612bea632aeb6429"
        "eb6628ec6726ed6925ee6a24ef6c23ef6e21f06f20f1711ff1731df2741cf3761bf37819f47918f57b17"
        "f57d15f67e14f68013f78212f78410f8850ff8870ef8890cf98b0bf98c0af98e09fa9008fa9207fa9407"
        "fb9606fb9706fb9906fb9b06fb9d07fc9f07fca108fca309fca50afca60cfca80dfcaa0ffcac11fcae12"
        "fcb014fcb216fcb418fbb61afbb81dfbba1ffbbc21fbbe23fac026fac228fac42afac62df9c72ff9c932"
        "f9cb35f8cd37f8cf3af7d13df7d340f6d543f6d746f5d949f5db4cf4dd4ff4df53f4e156f3e35af3e55d"
        "f2e661f2e865f2ea69f1ec6df1ed71f1ef75f1f179f2f27df2f482f3f586f3f68af4f88ef5f992f6fa96"
        "f8fb9af9fc9dfafda1fcffa4"
    ),
    "magma": (
        "00000401000501010601010802010902020b02020d03030f03031204041405041606051806051a07061c"
        "08071e0907200a08220b09240c09260d0a290e0b2b100b2d110c2f120d31130d34140e36150e38160f3b"
        "180f3d19103f1a10421c10441d11471e114920114b21114e22115024125325125527125829115a2a115c"
        "2c115f2d11612f116331116533106734106936106b38106c390f6e3b0f703d0f713f0f72400f74420f75"
        "440f764510774710784910784a10794c117a4e117b4f127b51127c52137c54137d56147d57157e59157e"
        "5a167e5c167f5d177f5f187f601880621980641a80651a80671b80681c816a1c816b1d816d1d816e1e81"
        "701f81721f817320817521817621817822817922827b23827c23827e2482802582812581832681842681"
        "8627818827818928818b29818c29818e2a81902a81912b81932b80942c80962c80982d80992d809b2e7f"
        "9c2e7f9e2f7fa02f7fa1307ea3307ea5317ea6317da8327daa337dab337cad347cae347bb0357bb2357b"
        "b3367ab5367ab73779b83779ba3878bc3978bd3977bf3a77c03a76c23b75c43c75c53c74c73d73c83e73"
        "ca3e72cc3f71cd4071cf4070d0416fd2426fd3436ed5446dd6456cd8456cd9466bdb476adc4869de4968"
        "df4a68e04c67e24d66e34e65e44f64e55064e75263e85362e95462ea5661eb5760ec5860ed5a5fee5b5e"
        "ef5d5ef05f5ef1605df2625df2645cf3655cf4675cf4695cf56b5cf66c5cf66e5cf7705cf7725cf8745c"
        "f8765cf9785df9795df97b5dfa7d5efa7f5efa815ffb835ffb8560fb8761fc8961fc8a62fc8c63fc8e64"
        "fc9065fd9266fd9467fd9668fd9869fd9a6afd9b6bfe9d6cfe9f6dfea16efea36ffea571fea772fea973"
        "feaa74feac76feae77feb078feb27afeb47bfeb67cfeb77efeb97ffebb81febd82febf84fec185fec287"
        "fec488fec68afec88cfeca8dfecc8ffecd90fecf92fed194fed395fed597fed799fed89afdda9cfddc9e"
        "fddea0fde0a1fde2a3fde3a5fde5a7fde7a9fde9aafdebacfcecaefceeb0fcf0b2fcf2b4fcf4b6fcf6b8"
        "fcf7b9fcf9bbfcfbbdfcfdbf"
    ),
    "plasma": (
        "0d088710078813078916078a19068c1b068d1d068e20068f2206902406912605912805922a05932c0594"
        "2e05952f059631059733059735049837049938049a3a049a3c049b3e049c3f049c41049d43039e44039e"
        "46039f48039f4903a04b03a14c02a14e02a25002a25102a35302a35502a45601a45801a45901a55b01a5"
        "5c01a65e01a66001a66100a76300a76400a76600a76700a86900a86a00a86c00a86e00a86f00a87100a8"
        "7201a87401a87501a87701a87801a87a02a87b02a87d03a87e03a88004a88104a78305a78405a78606a6"
        "8707a68808a68a09a58b0aa58d0ba58e0ca48f0da4910ea3920fa39410a29511a19613a19814a099159f"
        "9a169f9c179e9d189d9e199da01a9ca11b9ba21d9aa31e9aa51f99a62098a72197a82296aa2395ab2494"
        "ac2694ad2793ae2892b02991b12a90b22b8fb32c8eb42e8db52f8cb6308bb7318ab83289ba3388bb3488"
        "bc3587bd3786be3885bf3984c03a83c13b82c23c81c33d80c43e7fc5407ec6417dc7427cc8437bc9447a"
        "ca457acb4679cc4778cc4977cd4a76ce4b75cf4c74d04d73d14e72d24f71d35171d45270d5536fd5546e"
        "d6556dd7566cd8576bd9586ada5a6ada5b69db5c68dc5d67dd5e66de5f65de6164df6263e06363e16462"
        "e26561e26660e3685fe4695ee56a5de56b5de66c5ce76e5be76f5ae87059e97158e97257ea7457eb7556"
        "eb7655ec7754ed7953ed7a52ee7b51ef7c51ef7e50f07f4ff0804ef1814df1834cf2844bf3854bf3874a"
        "f48849f48948f58b47f58c46f68d45f68f44f79044f79143f79342f89441f89540f9973ff9983ef99a3e"
        "fa9b3dfa9c3cfa9e3bfb9f3afba139fba238fca338fca537fca636fca835fca934fdab33fdac33fdae32"
        "fdaf31fdb130fdb22ffdb42ffdb52efeb72dfeb82cfeba2cfebb2bfebd2afebe2afec029fdc229fdc328"
        "fdc527fdc627fdc827fdca26fdcb26fccd25fcce25fcd025fcd225fbd324fbd524fbd724fad824fada24"
        "f9dc24f9dd25f8df25f8e125f7e225f7e425f6e626f6e826f5e926f5eb27f4ed27f3ee27f3f027f2f227"
        "f1f426f1f525f0f724f0f921"
    ),
    "cividis": (
        "00204d00214e00225000225200235300245500255700255800265a00275c00275e002860002961002a63"
        "002a65002b67002c69002c6a002d6c002e6e002e6f002f6f002f6f00306f00306f00316f00326f00336f"
        "00336f00346f00356e01366e06366e0b376e0f386e12386d15396d183a6d1a3b6d1d3b6d1f3c6d213d6d"
        "233e6c243e6c263f6c28406c2a406c2b416c2d426c2e436c30436c31446b32456b34456b35466b36476b"
        "38486b39486b3a496b3b4a6b3d4a6b3e4b6b3f4c6b404d6b414d6b424e6b434f6b444f6b46506b47516b"
        "48526b49526b4a536b4b546c4c546c4d556c4e566c4f576c50576c51586c52596c53596c545a6c555b6d"
        "565c6d575c6d585d6d595e6d595f6d5a5f6d5b606e5c616e5d616e5e626e5f636e60646f61646f62656f"
        "63666f64666f646770656870666970676970686a71696b716a6c716b6c716c6d726c6e726d6e726e6f73"
        "6f70737071737171747272747273747374757474757575757676767777767877777878777979777a7a78"
        "7b7a787c7b787d7c787e7d787f7d78807e79817f79828079838079848179848279858379868379878479"
        "8885798986798a87798b87798c88798d89798e8a798f8a79908b79918c78928d78938e78948e78958f78"
        "9690789791789892789992789a93779b94779c95779d96779e96779f9777a09877a19976a29a76a39a76"
        "a49b76a59c76a69d75a89e75a99f75aa9f75aba074aca174ada274aea374afa473b0a473b1a573b2a672"
        "b3a772b4a872b5a971b6a971b7aa71b8ab70b9ac70baad70bbae6fbcaf6fbeaf6fbfb06ec0b16ec1b26d"
        "c2b36dc3b46dc4b56cc5b56cc6b66bc7b76bc8b86ac9b96acbba69ccbb69cdbc68cebc68cfbd67d0be67"
        "d1bf66d2c066d3c165d4c264d6c364d7c463d8c563d9c562dac661dbc761dcc860ddc95fdeca5fe0cb5e"
        "e1cc5de2cd5ce3ce5ce4cf5be5d05ae6d159e8d259e9d358ead357ebd456ecd555edd654efd753f0d852"
        "f1d951f2da50f3db4ff4dc4ef6dd4df7de4cf8df4bf9e04afae149fbe248fde346fee445ffe544ffe642"
        "ffe742ffe843ffe944ffea46"
    ),
    "CET-L1": (
        "0000000202020303030404040606060707070909090a0a0a0b0b0b0d0d0d0e0e0e0f0f0f101010111111"
        "1212121313131414141515151616161616161717171818181919191a1a1a1a1a1a1b1b1b1c1c1c1d1d1d"
        "1d1d1d1e1e1e1f1f1f202020212121212121222222232323242424252525252525262626272727282828"
        "2929292a2a2a2a2a2a2b2b2b2c2c2c2d2d2d2e2e2e2f2f2f2f2f2f303030313131323232333333343434"
        "3535353536353636363737373838383939393a3a3a3b3b3b3b3b3b3c3c3c3d3d3d3e3e3e3f3f3f404040"
        "4141414242424343434444444444444545454646464747474848484949494a4a4a4b4b4b4c4c4c4d4d4d"
        "4e4e4e4e4e4e4f4f4f5050505151515252525353535454545555555656565757575858585858585a5a5a"
        "5b5b5b5b5b5b5c5c5c5d5d5d5e5e5e5f5f5f606060616161626262636363646464656565666666676767"
        "6868686969696a6a6a6b6b6b6c6c6c6d6d6d6e6e6e6f6f6f6f6f6f707070717171727272747474757575"
        "7576767676767777777878787979797a7a7a7b7b7b7c7c7c7d7d7d7e7e7e7f7f7f808080818181828282"
        "8383838484848585858686868787878888888989898a8a8a8b8b8b8d8d8d8e8e8e8f8f8f909090919191"
        "9292929393939494949595959696969797979898989999999a9a9a9b9b9b9c9c9c9d9d9d9e9e9e9f9f9f"
        "a0a0a0a1a1a1a2a2a2a3a3a3a4a4a4a5a5a5a6a6a6a7a7a7a8a8a8a9aaaaabababacacacadadadaeaeae"
        "afafafb0b0b0b1b1b1b2b2b2b3b3b3b4b4b4b5b5b5b6b6b6b7b7b7b8b8b8b9b9b9babababbbbbbbdbdbd"
        "bebebebfbfbfc0c0c0c1c1c1c2c2c2c3c3c3c4c4c4c5c5c5c6c6c6c7c7c7c8c8c8c9cacacbcbcbcccccc"
        "cdcdcdcecececfcfcfd0d0d0d1d1d1d2d2d2d3d3d3d4d4d4d6d6d6d7d7d7d8d8d8d9d9d9dadadadbdbdb"
        "dcdcdcdddddddededee0e0e0e1e1e1e2e2e2e3e3e3e4e4e4e5e5e5e6e6e6e7e7e7e8e9e9eaeaeaebebeb"
        "ecececedededeeeeeeefefeff0f0f0f1f1f1f3f3f3f4f4f4f5f5f5f6f6f6f7f7f7f8f8f8f9f9f9fafafa"
        "fcfcfcfdfdfdfefefeffffff"
    ),
    "CET-D1": (
        "2151db2552db2a53db2e54dc3155dc3556dc3857dc3b58dc3e5add415bdd435cdd465ddd485ede4b5fde"
        "4d60de5061de5262de5464df5665df5866df5a67df5c68df5e6ae0606be0626ce0646de0666ee0686fe1"
        "6970e16b72e16d73e16f74e17075e27276e27478e27579e2777ae2797be37a7ce37c7de37d7fe37f80e3"
        "8181e38282e48484e48585e48786e48887e48a88e58b8ae58d8be58e8ce5908ee6918fe69290e69491e6"
        "9592e69794e69895e79a96e79b97e79c98e79e9ae79f9be7a09ce8a29ee8a39fe8a4a0e8a6a1e8a7a3e8"
        "a8a4e9aaa5e9aba7e9aca8e9aea9e9afaae9b0aceab2adeab3aeeab4afeab6b1eab7b2eab8b3ebb9b5eb"
        "bbb6ebbcb7ebbdb8ebbebaebc0bbebc1bcecc2bdecc3bfecc5c0ecc6c2ecc7c3ecc8c4eccac5edcbc7ed"
        "ccc8edcdc9edcfcbedd0ccedd1cdedd2cfeed3d0eed5d1eed6d3eed7d4eed8d5eedad6eedbd8eedcd9ee"
        "dddbefdedcefe0ddefe1deefe2dfefe3e1efe4e2efe5e3efe6e4eee8e5eee9e6eeeae6edeae7edebe7ec"
        "ece7ebede7eaeee7e9eee7e8efe7e7efe6e6f0e5e4f0e4e2f1e3e1f1e2dff1e1def1e0dcf1dedaf1ddd8"
        "f2dcd6f2dad4f2d8d2f2d7d0f2d5cff2d4cdf2d2caf2d1c9f2cfc7f1cec5f1ccc3f1cac1f1c9bff1c7bd"
        "f1c6bbf1c4b9f1c3b7f1c1b6f1c0b4f0beb2f0bdb0f0bbaef0b9acf0b8aaf0b6a8efb5a7efb3a4efb2a3"
        "efb0a1eeaf9feead9deeac9beeaa99eda897eda796eda594eda492eca290eca18eec9f8deb9e8beb9c89"
        "eb9a87ea9985ea9783ea9682e99480e9937ee9917ce88f7ae88e79e78c77e78b75e78973e68771e68670"
        "e5846ee5836ce4816ae48069e37e67e37c65e27b63e27962e17860e1765ee0745ce0735bdf7159df6f57"
        "de6e55de6c54dd6b52dd6950dc674fdb654ddb644bda6249da6048d95f46d85d44d85b43d75a41d7583f"
        "d6563dd5543cd5523ad45139d34f37d34d35d24b34d14932d14730d0452ecf442dcf422bce3f29cd3d28"
        "cd3b26cc3924cb3722ca3521ca321fc9301dc82e1cc82b1ac72918c62616c52314c52012c41c10c3180e"
        "c2140cc2100ac10908c00206"
    ),
    "CET-D1A": (
        "172972182a75182b78182c7b192d7d192e811a30831a31861a32891b338c1b348f1b35921c36951c3898"
        "1c399b1d3a9e1d3ba11d3ca41d3da81e3eab1e3fae1e41b11f42b41f43b72044ba2046bd2147c02248c2"
        "2349c5244ac8254cca274dcd294ecf2b50d22d51d42f52d63154d73455d93756db3958dc3c59de3f5bdf"
        "425ce0445de1475fe24a60e34d62e44f63e55265e65566e75768e85a69e95c6bea5f6ceb616eeb636fec"
        "6671ed6872ee6a74ef6d76ef6f77f07179f1737af2757cf3787df47a7ff57c81f57e82f68084f78285f7"
        "8487f88689f9888af98a8cfa8d8efa8f8ffb9191fb9393fc9594fc9796fc9998fc9b9afc9d9bfd9f9dfd"
        "a19ffca3a0fca5a2fca8a4fcaaa6fcaba8fcada9fcafabfbb1adfbb3affbb5b0fbb7b2fbb9b4fabbb6fa"
        "bdb8fabeb9fac1bbf9c2bdf9c4bff9c6c1f9c8c3f8c9c4f8cbc6f8cdc8f7cfcaf7d0ccf7d2cef7d4d0f6"
        "d5d1f6d7d3f6d9d5f5dbd6f5dcd8f4dedaf4e0dcf3e1ddf3e3def2e4dff1e6e1f0e8e1efe9e2edebe3ec"
        "ece3ebede3e9efe3e7f0e2e5f1e1e3f2e0e1f3dfdef4dedcf5ddd9f6dbd6f7d9d4f7d7d1f8d5cef9d3cb"
        "f9d1c8facfc6facdc3facac0fbc8bdfbc6bafbc4b7fcc1b5fcbfb2fcbcaffcbaacfcb8a9fcb6a6fdb3a3"
        "fdb1a1fdae9efdac9bfdaa98fda896fda593fda390fda08dfc9e8afc9c88fc9985fc9782fc9480fc927d"
        "fb907afb8d78fb8b75fa8872fa8670f9846df9816bf87f69f87c66f77a64f67861f6765ff5745df4715b"
        "f36f58f26d56f16b54f06852ef6650ed644eec624ceb604aea5e48e95b46e85944e65742e55541e4533e"
        "e2503de14e3be04c39df4937dd4735dc4533db4231da402fd83d2dd73b2cd5382ad43628d33326d13024"
        "d02e22cf2b21cd281fcb251dca221cc81f1ac71c18c51917c31615c11314bf1013bd0c12bb0911b90710"
        "b6050fb4030eb2020eaf010dad010caa000ca8000ba5000ba2010b9f010b9d010a9a020a97020a95020a"
        "9203098f03098d04098a04088704088505088205078005077d06077a0606780606750605730705700704"
        "6e07046b0703690703660702"
    ),
    "CET-D3": (
        "39970e3b97123d98153e9918419a1a429a1d449b1f469c22489d244a9d264b9e284d9f2a4f9f2c51a02e"
        "52a13054a13256a23457a33659a4385ba4395ca53b5ea63d5fa73f61a74162a84264a94465a94667aa47"
        "69ab496aab4b6bac4d6dad4e6eae5070ae5271af5373b05574b05776b15877b25a79b35c7ab35d7bb45f"
        "7db5617eb56280b66481b76583b76784b86985b96a87ba6c88ba6e8abb6f8bbc718cbc728ebd748fbe76"
        "91be7892bf7993c07b95c17c96c17e97c28099c3819ac3839cc4859dc5869ec588a0c689a1c78ba2c78d"
        "a3c88fa5c990a6ca92a8ca93a9cb95aacc97accd98adcd9aaece9cb0cf9db1cf9fb2d0a1b4d1a2b5d1a4"
        "b6d2a5b8d3a7b9d3a9bad4abbcd5acbdd5aebed6afc0d7b1c1d7b3c2d8b5c4d9b6c5dab8c6dabac7dbbb"
        "c9dcbdcadcbecbddc0cddec2cedec4cfdfc5d1e0c7d2e0c9d3e1cad5e2ccd6e2ced7e3cfd8e4d1dae5d3"
        "dbe5d4dde6d6dee7d8dfe7d9e0e8dbe2e8dde3e9dee4e9dfe6eae1e7eae2e8ebe3e9ebe4eaebe5ebebe6"
        "ecebe6edebe6eeeae7efeae7f0e9e6f0e9e6f1e8e5f2e7e5f2e7e4f3e6e3f3e4e2f4e3e1f4e2dff5e1de"
        "f5e0ddf5dfdcf5dedaf6ddd9f6dbd7f6dad6f6d9d5f7d8d3f7d6d2f7d5d0f7d4cff8d3cef8d2ccf8d0cb"
        "f8cfc9f8cec8f8cdc6f9cbc5f9cac4f9c9c2f9c8c1f9c7c0f9c5bef9c4bdf9c3bbfac2bafac1b8fabfb7"
        "fabeb6fabdb4fabcb3fabab1fab9b0fab8affab7adfab5acfab4abfab3a9fab2a8fab0a7faafa5faaea4"
        "faada2faaba1faaaa0faa99efaa89dfaa79cfaa59afaa499faa397faa196faa095fa9f93fa9e92fa9c91"
        "fa9b90fa9a8efa988df9978bf9968af99589f99387f99286f99185f99084f98e82f98d81f88c80f88a7e"
        "f8897df8887cf8867af88579f78478f78376f78175f78074f77e72f77d71f67c70f67a6ff6796df6786c"
        "f6766bf5756af57468f57267f57166f56f64f46e63f46d62f46b61f46a5ff3685ef3675df3655cf3645a"
        "f26259f26158f15f57f15e55f15d54f15b53f05952f05850f0564fef554eef534def514bef504aee4e49"
        "ee4c48ee4a47ed4945ed4744"
    ),
}


def colormap_names() -> list[str]:
    """Our colour map names, for combo boxes and the CLI's help."""
    return list(COLORMAPS)


def check_colormap(name: str) -> str:
    """Return ``name`` if it is a colour map (one of ours or its pyqtgraph source name).

    Raises:
        HookScopeError: One sentence naming the valid choices.
    """
    lut(name)
    return name


@cache
def lut(name: str = DEFAULT_CMAP) -> np.ndarray:
    """Colour map ``name`` as a read-only (256, 3) uint8 table.

    Raises:
        HookScopeError: Unknown name (never a silent fallback).
    """
    key = COLORMAPS.get(str(name).lower(), name)
    if key not in _TABLES:
        raise HookScopeError(f"Unknown colour map '{name}': use one of {', '.join(COLORMAPS)}.")
    table = np.frombuffer(bytes.fromhex("".join(_TABLES[key])), np.uint8).reshape(256, 3)
    table = np.ascontiguousarray(table)
    table.setflags(write=False)
    return table


def colorize(
    a: np.ndarray, cmap: str = DEFAULT_CMAP, levels: tuple[float, float] = (0.0, 1.0)
) -> np.ndarray:
    """Colour a 2-D array: ``levels`` (lo, hi) span the colour map; uint8 RGB (H, W, 3).

    NaN becomes :data:`NAN_RGB`, the background a mosaic pane shows through NaN.
    """
    a = np.asarray(a, dtype=np.float32)
    if a.ndim != 2:
        raise ValueError(f"colorize expects a 2-D map, got shape {a.shape}")
    table = lut(cmap)
    lo, hi = float(levels[0]), float(levels[1])
    span = hi - lo or 1.0
    nan = np.isnan(a)
    has_nan = bool(nan.any())
    # pyqtgraph's arithmetic, step for step: float32, subtract, scale, clip, truncate.
    work = np.where(nan, np.float32(lo), a) if has_nan else a.copy()
    work -= np.float32(lo)
    work *= np.float32(len(table) / span)
    np.clip(work, 0, len(table) - 1, out=work)
    rgb = np.take(table, work.astype(np.uint8), axis=0)  # several times faster than table[idx]
    if has_nan:
        rgb[nan] = NAN_RGB
    return rgb


def colorize_signed(
    arr2d: np.ndarray, cmap: str = DEFAULT_SIGNED_CMAP, limit: float | None = None
) -> np.ndarray:
    """Colour a signed 2-D map with a diverging map, 0 at the centre colour, ±limit at the ends."""
    return colorize(normalize_signed(arr2d, limit), cmap)
